"""The drill catalog of DESIGN.md: each injects one fault from the article; the named alerts must fire.

`tolerated` lists alerts that the fault may also fire, each because the fault really causes it
(for example, a slow view also burns the latency SLO budget); anything else that fires during a
drill is a false alert and fails it.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from ops.drills.harness import DrillFailed, Load, Stack, http

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


_CELERY_BECAUSE_BROKER = "without the broker the exporter sees no worker and no consumer (Alertmanager inhibits it)"

# Web and Celery drills alternate, so that one drill's slow SLO burn fades during the next.
_ORDER = ["slow-view", "task-backlog", "cpu-view", "task-failures", "blocking-async", "task-time-limit",
          "sync-export", "retry-storm", "sync-export-offloaded", "server-errors", "worker-timeout", "worker-down",
          "broker-down"]

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
    # Beyond DESIGN.md's table: an unhandled exception in a view, for the 5xx and availability side.
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
          ["CeleryQueueBacklog", "CeleryWorkersSaturated", "CeleryTaskQueueWaitHigh"], {},
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
          _kill_worker, ["CeleryWorkerDown", "CeleryQueueNoConsumers"], {},
          {"workers up": "celery_worker_up", "queue length": "celery_queue_length"}),
    Drill("broker-down", "Redis is stopped",
          _stop_redis, ["RedisDown"],
          {"CeleryWorkerDown": _CELERY_BECAUSE_BROKER, "CeleryQueueNoConsumers": _CELERY_BECAUSE_BROKER},
          {"redis up": "redis_up"}),
]}
DRILLS: dict[str, Drill] = {name: _CATALOG[name] for name in _ORDER}
