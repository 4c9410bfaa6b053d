"""The drill catalog (docs/drills.md, "Faults"): each injects one fault; the named alerts must fire.

`tolerated` lists alerts that the fault may also fire, each because the fault really causes it
(for example, a slow view also burns the latency SLO budget); anything else that fires during a
drill is a false alert and fails it.
"""
from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ops.drills.harness import DrillFailed, Load, Stack, wait_until
from ops.drills.procs import http

Remove = Callable[[], None]


@dataclass
class Drill:
    name: str
    fault: str
    inject: Callable[[Stack], Remove]
    expected: list[str]
    tolerated: dict[str, str] = field(default_factory=dict)  # alert -> why the fault causes it
    series: dict[str, str] = field(default_factory=dict)  # plot title -> PromQL
    fire_timeout: float = 180.0
    resolve_timeout: float = 180.0
    hold: float = 0.0  # for drills that expect nothing: how long the fault runs
    check: Callable[[Stack], str | None] | None = None  # after resolving: a problem found, or None


def _load(url: str, clients: int, pause: float = 0.0, timeout: float = 30.0) -> Callable[[Stack], Remove]:
    def inject(stack: Stack) -> Remove:
        load = Load(url.format(web=stack.url("WEB_PORT"), asgi=stack.url("ASGI_PORT")), clients, timeout, pause)
        return load.stop
    return inject


def _producer(query: str, every: float) -> Callable[[Stack], Remove]:
    """POST /drills/tasks/?<query> every `every` seconds until removed, then purge the drill queue."""
    def inject(stack: Stack) -> Remove:
        stop = threading.Event()
        url = f"{stack.url('WEB_PORT')}/drills/tasks/?{query}"

        def run():
            while not stop.is_set():
                status, body = http(url, b"")
                if status != 202:
                    raise DrillFailed(f"enqueueing drill tasks failed: HTTP {status} {body[:200]!r}")
                stop.wait(every)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def remove():
            stop.set()
            thread.join(15)
            http(f"{stack.url('WEB_PORT')}/drills/tasks/purge/", b"")
        return remove
    return inject


def _worker_timeout(stack: Stack) -> Remove:
    # Two requests, one after the other: each outlives GUNICORN_TIMEOUT and gets its worker killed.
    for _ in range(2):
        http(f"{stack.url('WEB_PORT')}/drills/worker-timeout/", timeout=30)
    return lambda: None


def _kill_worker(stack: Stack) -> Remove:
    import os
    import signal

    os.kill(stack.program_pid("worker"), signal.SIGKILL)  # the fault: no goodbye, no offline event
    stack.supervisorctl("stop", "worker")  # keep it down (supervisord would restart it)
    http(f"{stack.url('WEB_PORT')}/drills/tasks/?kind=ok&count=5", b"")  # work arrives, nobody takes it
    return lambda: (stack.supervisorctl("start", "worker"), None)[1]


def _stop_redis(stack: Stack) -> Remove:
    stack.supervisorctl("stop", "redis")
    return lambda: (stack.supervisorctl("start", "redis"), None)[1]


# --- jobs drills ---------------------------------------------------------------------------

def _multipart(csv_bytes: bytes) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"drill.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode() + csv_bytes + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _good_csv(rows: int = 20) -> bytes:
    return ("id,value,label\n" + "".join(f"{i},{i * 0.5:.1f},name{i % 7}\n" for i in range(rows))).encode()


def _poison_csv() -> bytes:
    """A CSV whose first 64 KiB are clean (what the request parses) and whose row 4,001 has 2 fields.

    The request's cheap check passes it (202); the task's full parse fails it, every time, with
    JobInputInvalid: no retry can help, so each upload is one failed task.
    """
    good = "".join(f"{i},{i * 0.25:.2f},label-{i % 13:02d}\n" for i in range(4000))  # ~86 KB
    return ("id,value,label\n" + good + "4000,broken\n" + "4001,1.00,label-00\n").encode()


def _upload(stack: Stack, csv_bytes: bytes) -> str:
    body, headers = _multipart(csv_bytes)
    status, answer = stack.api("/api/imports/", body, headers)
    if status != 202:
        raise DrillFailed(f"upload not accepted: HTTP {status} {answer[:200]!r}")
    return str(json.loads(answer)["id"])


def _uploads_every(every: float, csv_bytes: bytes) -> Callable[[Stack], Remove]:
    """POST the CSV to /api/imports/ every `every` seconds until removed; each must be accepted."""
    def inject(stack: Stack) -> Remove:
        stop = threading.Event()

        def run():
            while not stop.is_set():
                _upload(stack, csv_bytes)
                stop.wait(every)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return lambda: (stop.set(), thread.join(15), None)[-1]
    return inject


def _hex(job_id: str) -> str:
    return uuid.UUID(job_id).hex  # Django stores a UUIDField as 32 hex digits in SQLite


def _jobs_done_once(stack: Stack, ids: list[str], timeout: float = 120.0) -> str | None:
    """Wait until every job succeeded; then check, in the database, that each has one success."""
    marks = ",".join("?" * len(ids))

    def rows():
        return stack.db(f"SELECT id, state, attempts, history, result_file FROM jobs_job WHERE id IN ({marks})",
                        tuple(_hex(i) for i in ids))
    try:
        wait_until(lambda: (found := rows()) and len(found) == len(ids)
                   and all(r[1] == "succeeded" for r in found), timeout, f"{len(ids)} drill jobs to succeed")
    except DrillFailed:
        states = sorted(r[1] for r in rows())
        return f"not every accepted job succeeded: {len(ids)} accepted, states {states}"
    problems = []
    for job_id, _state, attempts, history, result in rows():
        successes = sum(1 for event in json.loads(history) if event.get("state") == "succeeded")
        if successes != 1 or not result:
            problems.append(f"{job_id}: {successes} successes, result {result!r}, {attempts} attempts")
    return "; ".join(problems) or None


class _SweeperDown:
    """Stop the sweeper, stop Redis, accept uploads into the outbox, bring Redis back; the sweeper stays down.

    RedisDown pages during the outage (and holds JobsOutboxStalled back); once Redis is back the
    outbox still does not drain, and JobsOutboxStalled must page on its own. Removing the fault
    starts the sweeper; check() then asserts against the database that every job accepted
    during the outage succeeded exactly once.
    """

    UPLOADS = 8
    OUTAGE_SECONDS = 20.0

    def __init__(self):
        self.ids: list[str] = []

    def inject(self, stack: Stack) -> Remove:
        self.ids = []
        stack.supervisorctl("stop", "sweeper")
        stack.supervisorctl("stop", "redis")
        for _ in range(self.UPLOADS):
            self.ids.append(_upload(stack, _good_csv()))  # 202: stored, the publish waits in the outbox
        timer = threading.Timer(self.OUTAGE_SECONDS, stack.supervisorctl, ("start", "redis"))
        timer.start()

        def remove():
            timer.cancel()
            stack.supervisorctl("start", "redis")  # no-op when already back
            stack.supervisorctl("start", "sweeper")
        return remove

    def check(self, stack: Stack) -> str | None:
        return _jobs_done_once(stack, self.ids)


class _LostMessage:
    """Delete a queued job's message from Redis (what an fsync-once-a-second crash can lose).

    The workers stop consuming `imports` for the second it takes (cancel_consumer, not a stopped
    worker), the message is removed with LREM, consuming resumes. The job stays `queued` with no
    message: JobsStuck fires once it is past JOBS_DEADLINE_QUEUED_SECONDS, then the sweeper
    re-publishes it after JOBS_REQUEUE_LOST_AFTER_SECONDS and it completes.
    """

    def __init__(self):
        self.job_id = ""

    def _consumer(self, stack: Stack, action: str) -> None:
        status, body = http(f"{stack.url('WEB_PORT')}/drills/consumer/?queue=imports&action={action}", b"")
        if status != 200:
            raise DrillFailed(f"consumer {action}: HTTP {status} {body[:200]!r}")

    def inject(self, stack: Stack) -> Remove:
        import redis

        client = redis.Redis(host="127.0.0.1", port=int(stack.env["REDIS_PORT"]))
        self._consumer(stack, "cancel")
        try:
            self.job_id = _upload(stack, _good_csv())
            message = wait_until(
                lambda: next((m for m in client.lrange("imports", 0, -1) if self.job_id.encode() in m), None),
                15, f"the message of job {self.job_id} in the imports queue", interval=0.2)
            if client.lrem("imports", 1, message) != 1:
                raise DrillFailed(f"could not remove the message of job {self.job_id}")
        finally:
            self._consumer(stack, "add")
        return lambda: None  # the sweeper's recovery is what the drill checks

    def check(self, stack: Stack) -> str | None:
        problem = _jobs_done_once(stack, [self.job_id], timeout=60)
        republished = stack.query('sum(jobs_republished_total{reason="lost_message"})')
        if not problem and not (republished and float(republished[0]["value"][1]) >= 1):
            problem = "the job completed, but jobs_republished_total{reason=\"lost_message\"} did not count it"
        return problem


_SWEEPER_DOWN = _SweeperDown()
_LOST_MESSAGE = _LostMessage()

_CELERY_BECAUSE_BROKER = "without the broker the exporter sees no worker and no consumer (Alertmanager inhibits it)"

# Web and Celery drills alternate, so that one drill's slow SLO burn fades during the next.
_ORDER = ["slow-view", "task-backlog", "cpu-view", "task-failures", "blocking-async", "task-time-limit",
          "sync-export", "retry-storm", "sync-export-offloaded", "server-errors", "worker-timeout", "db-errors",
          "poison-upload", "lost-message", "worker-down", "broker-down", "sweeper-down"]
_RATE_LIMIT_CACHE = ("the API rate limiter keeps its counts in the broker's Redis: while Redis is down each API "
                     "request counts an instrumentation failure at stage rate_limit (and is served)")
# Measured: an upload during the outage answers 202 after 6 s, because kombu retries the broker
# connection (default max_retries) before apply_async(retry=False) gives up; with the transport
# option max_retries=0 on the request's publish it gives up in 0.1 s and these two go away.
_PUBLISH_WAITS = ("each upload accepted during the broker outage waits 6 s on the request-time publish "
                  "(kombu's connection retries) before the outbox takes it")
_STUCK_IN_QUEUED = "jobs accepted during the fault wait in queued past the drills' 45 s deadline"

_CATALOG: dict[str, Drill] = {d.name: d for d in [
    Drill("slow-view", "time.sleep(3) inside a sync view, 8 clients on 2 workers",
          _load("{web}/drills/slow-view/?seconds=3", clients=8),
          ["DjangoSlowRequests", "GunicornWorkersSaturated", "GunicornRequestsQueued"],
          {"DjangoLatencyBudgetBurn": "every request of the tier is slow or waits: the latency budget burns"},
          {"saturation (busy / capacity)": 'instance:gunicorn_saturation:ratio{job="django-wsgi"}',
           "listen backlog": 'gunicorn_listen_backlog{job="django-wsgi"}'}),
    Drill("cpu-view", "a CPU-bound loop of 1.2 s inside a view",
          _load("{web}/drills/cpu-view/?seconds=1.2", clients=1, pause=0.2),
          ["DjangoSlowRequests"],
          {"DjangoLatencyBudgetBurn": "the slow requests spend the latency budget"},
          {"share of slow requests by view": "view:django_http_slow_requests:ratio_rate5m"}),
    Drill("blocking-async", "time.sleep(0.6) inside an async view (ASGI)",
          _load("{asgi}/drills/blocking-async/?seconds=0.6", clients=1, pause=0.3),
          ["DjangoEventLoopBlocked"],
          {"DjangoSlowRequests": "requests queued behind the blocked loop get slow too",
           "DjangoLatencyBudgetBurn": "requests queued behind the blocked loop get slow too"},
          {"event-loop lag p99 (s)": "histogram_quantile(0.99, sum by (le) "
                                      "(rate(django_asgi_event_loop_lag_seconds_bucket[15s])))"}),
    Drill("sync-export", "a 1.5 s report export built inside the request",
          _load("{web}/drills/sync-export/?seconds=1.5", clients=1, pause=0.5),
          ["DjangoSlowRequests"],
          {"DjangoLatencyBudgetBurn": "the slow requests spend the latency budget"},
          {"share of slow requests by view": "view:django_http_slow_requests:ratio_rate5m"}),
    Drill("sync-export-offloaded", "the same export queued to Celery (the fix): must fire nothing",
          _load("{web}/drills/offloaded-export/", clients=1, pause=0.5),
          [], {}, {"share of slow requests by view": "view:django_http_slow_requests:ratio_rate5m"}, hold=45),
    # An unhandled exception in a view, for the 5xx and availability side.
    Drill("server-errors", "a view raising an unhandled exception (500) at 5 requests per second",
          _load("{web}/drills/error/", clients=1, pause=0.2),
          ["DjangoHighServerErrorRate"],
          {"DjangoAvailabilityBudgetBurn": "the 500s spend the availability budget"},
          {"5xx ratio by view": "view:django_http_server_errors:ratio_rate5m"}),
    Drill("worker-timeout", "two requests sleep past GUNICORN_TIMEOUT (6 s in drills)",
          _worker_timeout, ["GunicornWorkerTimeouts"], {},
          {"worker timeouts": 'sum(gunicorn_worker_timeouts_total{job="django-wsgi"})'}),
    Drill("task-backlog", "3 tasks of 2 s each per second on a pool of 2",
          _producer("kind=busy&seconds=2&count=3", every=1.0),
          ["CeleryQueueBacklog", "CeleryWorkersSaturated", "CeleryTaskQueueWaitHigh"],
          {"JobsStuck": "background uploads queue behind the busy pool past the drills' 45 s queued deadline"},
          {"queue length": 'celery_queue_length{queue_name="default"}',
           "mean queue wait (s)": "queue_name:celery_task_queue_wait_seconds:mean5m"},
          fire_timeout=300),
    Drill("task-failures", "a task that always fails, 2 per second",
          _producer("kind=fail&count=2", every=1.0), ["CeleryTaskFailureRateHigh"], {},
          {"failure ratio by task": "name:celery_task_failures:ratio_rate5m"}),
    Drill("task-time-limit", "tasks that run past their soft and hard time limits",
          _producer("kind=sleep&seconds=3&ignore_soft_limit=1&count=1", every=3.0),
          ["CeleryTaskTimeLimitExceeded"],
          {"CeleryTaskFailureRateHigh": "a task stopped by its time limit fails"},
          {"time-limit hits": "sum by (limit) (celery_task_time_limit_exceeded_total)"}),
    Drill("retry-storm", "a task retrying 30 times with countdown 0 (no backoff)",
          _producer("kind=retry&times=30&count=1", every=1.0), ["CeleryTaskRetryStorm"], {},
          {"retry ratio by task": "name:celery_task_retries:ratio_rate5m"}),
    Drill("worker-down", "the Celery worker is SIGKILLed and stays down",
          _kill_worker, ["CeleryWorkerDown", "CeleryQueueNoConsumers"], {"JobsStuck": _STUCK_IN_QUEUED},
          {"workers up": "celery_worker_up", "queue length": "celery_queue_length"}),
    Drill("broker-down", "Redis is stopped",
          _stop_redis, ["RedisDown"],
          {"CeleryWorkerDown": _CELERY_BECAUSE_BROKER, "CeleryQueueNoConsumers": _CELERY_BECAUSE_BROKER,
           "DjangoInstrumentationErrors": _RATE_LIMIT_CACHE, "JobsStuck": _STUCK_IN_QUEUED},
          {"redis up": "redis_up"}),
    Drill("db-errors", "a view whose query the database refuses (a dropped table), 2 requests per second",
          _load("{web}/drills/db-errors/", clients=1, pause=0.5),
          ["DjangoDatabaseErrors"],
          {"DjangoHighServerErrorRate": "every refused query is a 500 of that view",
           "DjangoAvailabilityBudgetBurn": "the 500s spend the availability budget"},
          {"database errors per second": "alias:django_db_errors:rate5m",
           "5xx ratio by view": "view:django_http_server_errors:ratio_rate5m"}),
    Drill("poison-upload", "a CSV clean in its first 64 KiB, malformed at row 4,001: accepted (202), "
          "failed by the task every time, one upload per second",
          _uploads_every(1.0, _poison_csv()),
          ["CeleryTaskFailureRateHigh"], {},
          {"failure ratio by task": "name:celery_task_failures:ratio_rate5m",
           "failed imports by exception": 'sum by (exception) (celery_task_failed_total{name="jobs.process_import"})'}),
    Drill("lost-message", "a queued job's message is deleted from Redis; the sweeper must re-publish it",
          _LOST_MESSAGE.inject, ["JobsStuck"], {},
          {"oldest queued job (s)": 'state:jobs_oldest_age_seconds:max{state="queued"}',
           "lost messages re-published": 'sum(jobs_republished_total{reason="lost_message"})'},
          fire_timeout=150, check=_LOST_MESSAGE.check),
    Drill("sweeper-down", f"the outbox sweeper is stopped, then Redis while {_SweeperDown.UPLOADS} uploads are "
          f"accepted and {_SweeperDown.OUTAGE_SECONDS:.0f} s more; Redis returns, the sweeper stays down",
          _SWEEPER_DOWN.inject, ["JobsOutboxStalled"],
          {"RedisDown": "the fault includes the broker outage",
           "CeleryWorkerDown": _CELERY_BECAUSE_BROKER, "CeleryQueueNoConsumers": _CELERY_BECAUSE_BROKER,
           "DjangoInstrumentationErrors": _RATE_LIMIT_CACHE, "JobsStuck": _STUCK_IN_QUEUED,
           "DjangoSlowRequests": _PUBLISH_WAITS, "DjangoLatencyBudgetBurn": _PUBLISH_WAITS},
          {"outbox and sweeper heartbeat age (s)": "job:jobs_outbox_oldest_age_seconds:max "
                                                   "or job:jobs_sweeper_heartbeat_age_seconds:max",
           "redis up": "redis_up"},
          fire_timeout=240, check=_SWEEPER_DOWN.check),
]}
DRILLS: dict[str, Drill] = {name: _CATALOG[name] for name in _ORDER}
