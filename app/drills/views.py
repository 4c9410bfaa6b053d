"""Fault-injection endpoints: each reproduces one blocking pattern from the article.

All of them answer 404 unless DRILLS_ENABLED=1, so a production deploy exposes nothing.
"""
import asyncio
import hashlib
import time
from functools import wraps

from django.conf import settings
from django.http import Http404, JsonResponse

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
