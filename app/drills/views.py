"""Fault-injection endpoints: each reproduces one blocking pattern from the article.

All of them answer 404 unless DRILLS_ENABLED=1, so a production deploy exposes nothing.
"""
import asyncio
import hashlib
import time
from functools import wraps

from django.conf import settings
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from app.jobs import services

_MAX_SECONDS = 120.0


def _seconds(request, default: float) -> float:
    try:
        value = float(request.GET.get("seconds", default))
    except ValueError:
        value = default
    return max(0.0, min(value, _MAX_SECONDS))


def drill(view):
    """Hide the view (404) unless drills are enabled."""
    if asyncio.iscoroutinefunction(view):
        @wraps(view)
        async def async_wrapper(request, *args, **kwargs):
            if not settings.DRILLS_ENABLED:
                raise Http404("drills are disabled")
            return await view(request, *args, **kwargs)
        return async_wrapper

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not settings.DRILLS_ENABLED:
            raise Http404("drills are disabled")
        return view(request, *args, **kwargs)
    return wrapper


_SEEN_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP", "HTTP_X_FORWARDED_PROTO", "HTTP_X_REQUEST_ID",
                 "HTTP_X_REQUEST_START")


@drill
def request_headers(request):
    """What the app sees of a request behind the proxy: peer, forwarded headers that survived the guard, request id."""
    seen = {key: request.META.get(key) for key in _SEEN_HEADERS}
    return JsonResponse({"remote_addr": request.META.get("REMOTE_ADDR"), "scheme": request.scheme,
                         "request_id": getattr(request, "request_id", None), **seen})


@drill
def slow_view(request):
    """time.sleep inside a sync view: the worker is gone for that long."""
    seconds = _seconds(request, 2.0)
    time.sleep(seconds)
    return JsonResponse({"drill": "slow-view", "slept": seconds})


@drill
def cpu_view(request):
    """A CPU-bound loop in the request: the worker burns its core."""
    seconds = _seconds(request, 1.5)
    deadline = time.perf_counter() + seconds
    digest, rounds = b"", 0
    while time.perf_counter() < deadline:
        digest = hashlib.sha256(digest).digest()
        rounds += 1
    return JsonResponse({"drill": "cpu-view", "rounds": rounds})


@drill
async def blocking_async(request):
    """A synchronous call inside an async view: the whole event loop stops."""
    seconds = _seconds(request, 1.0)
    time.sleep(seconds)  # the bug on purpose: should be `await asyncio.sleep(...)`
    return JsonResponse({"drill": "blocking-async", "blocked": seconds})


@drill
async def nonblocking_async(request):
    """The fix: an awaitable wait leaves the loop free for other requests."""
    seconds = _seconds(request, 1.0)
    await asyncio.sleep(seconds)
    return JsonResponse({"drill": "nonblocking-async", "waited": seconds})


@drill
def sync_export(request):
    """An export built inside the request (the anti-pattern), padded to a realistic length."""
    seconds = _seconds(request, 2.0)
    started = time.perf_counter()
    summary, _data = services.build_jobs_report()
    time.sleep(max(0.0, seconds - (time.perf_counter() - started)))
    return JsonResponse({"drill": "sync-export", "summary": summary})


@drill
def offloaded_export(request):
    """The fix: the same export queued to Celery, answered at once with 202."""
    job = services.job_create_export({"report": "jobs"})
    return JsonResponse({"drill": "offloaded-export", "id": str(job.pk), "state": job.state}, status=202)


@drill
def worker_timeout(request):
    """Sleep past the gunicorn timeout: the master kills the worker mid-request."""
    seconds = _seconds(request, settings.DRILLS_TIMEOUT_SLEEP_SECONDS)
    time.sleep(seconds)
    return JsonResponse({"drill": "worker-timeout", "slept": seconds})


class DrillError(Exception):
    """Raised on purpose by the error drill."""


@drill
def error(request):
    """An unhandled exception in a view: a 500, an error event in Sentry, a 5xx in the metrics."""
    raise DrillError("drill: an unhandled exception in a view")


@drill
def db_view(request):
    """A realistic read-only view: a few queries and a small JSON body (the benchmark's second case)."""
    from django.db.models import Count

    from app.jobs.models import Job

    by_state = dict(Job.objects.values_list("state").annotate(n=Count("id")).order_by())
    recent = list(Job.objects.order_by("-created_at").values("id", "kind", "state", "progress")[:20])
    total = Job.objects.count()
    return JsonResponse({"total": total, "by_state": by_state,
                         "recent": [{**job, "id": str(job["id"])} for job in recent]})


@drill
def db_errors(request):
    """A view whose query the database refuses (the table it reads was dropped): a 500 per request.

    The statement really runs and really fails in the database, so django-prometheus counts it in
    django_db_errors_total{type="OperationalError"} (ProgrammingError on PostgreSQL).
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM drills_dropped_table")
        (count,) = cursor.fetchone()
    return JsonResponse({"drill": "db-errors", "rows": count})


@csrf_exempt
@drill
def consumer(request):
    """Stop or resume consuming a queue on every worker: POST ?queue=imports&action=cancel|add.

    The lost-message drill holds a job's message in Redis this way for the moment it takes to
    delete it, without stopping the worker.
    """
    from app.celery import app as celery_app

    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    queue, action = request.GET.get("queue", ""), request.GET.get("action", "")
    if queue not in {"imports", "exports", "default"} or action not in {"cancel", "add"}:
        return JsonResponse({"error": "queue must be imports, exports or default; action cancel or add"},
                            status=400)
    control = celery_app.control.cancel_consumer if action == "cancel" else celery_app.control.add_consumer
    replies = control(queue, reply=True, timeout=5)
    if not replies:
        return JsonResponse({"error": "no worker answered"}, status=503)
    return JsonResponse({"drill": "consumer", "queue": queue, "action": action, "workers": len(replies)})


_TASK_KINDS = {  # kind -> (task name, kwargs from the query string)
    "ok": ("drills.ok", lambda q: {}),
    "fail": ("drills.fail", lambda q: {}),
    "retry": ("drills.retry", lambda q: {"times": int(q.get("times", 20))}),
    "busy": ("drills.busy", lambda q: {"seconds": float(q.get("seconds", 2))}),
    "sleep": ("drills.sleep", lambda q: {"seconds": float(q.get("seconds", 1.5)),
                                         "ignore_soft_limit": q.get("ignore_soft_limit") == "1"}),
    "reject": ("drills.reject", lambda q: {}),
    "revoke": ("drills.ok", lambda q: {}),  # sent with a countdown, then revoked before it runs
}


@csrf_exempt
@drill
def tasks(request):
    """Enqueue drill tasks: POST ?kind=ok|fail|retry|busy|sleep&count=N (task-side drills)."""
    from app.celery import app as celery_app

    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    kind = request.GET.get("kind", "")
    if kind not in _TASK_KINDS:
        return JsonResponse({"error": f"kind must be one of {', '.join(_TASK_KINDS)}"}, status=400)
    try:
        count = max(1, min(int(request.GET.get("count", 1)), 1000))
        name, kwargs = _TASK_KINDS[kind][0], _TASK_KINDS[kind][1](request.GET)
    except ValueError as exc:
        return JsonResponse({"error": f"bad parameter: {exc}"}, status=400)
    with celery_app.producer_or_acquire() as producer:
        for _ in range(count):
            countdown = 2 if kind == "revoke" else None
            result = celery_app.send_task(name, kwargs=kwargs, queue="default", producer=producer,
                                          countdown=countdown)
            if kind == "revoke":
                celery_app.control.revoke(result.id)
    return JsonResponse({"drill": "tasks", "kind": kind, "count": count}, status=202)


@csrf_exempt
@drill
def purge_default_queue(request):
    """Drop the messages waiting in the default queue (where drill tasks go); jobs queues are kept."""
    from app.celery import app as celery_app

    if request.method != "POST":
        return JsonResponse({"error": "POST only"}, status=405)
    with celery_app.connection_for_write() as conn:
        purged = conn.default_channel.queue_purge("default") or 0
    return JsonResponse({"drill": "purge", "purged": purged})
