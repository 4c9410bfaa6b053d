"""Exact Celery task metrics, recorded where each thing happens (celery-exporter's names and labels).

Counters are written by the process that sees the event: the producer counts `sent` after
a publish succeeded, the worker's main process counts `received`, `revoked`, `rejected` and
time-limit hits, the pool child counts `started`, `succeeded`, `failed`, `retried` and the
histograms. In prometheus_client multiprocess mode every increment lands in a memory-mapped
file at once, so a child that is recycled or SIGKILLed has already counted what it did; the
exporter (exporter.py) serves the files. No broker events are involved, so nothing is lost
when the event stream is off, slow or down.

As celery-exporter (src/exporter.py, track_task_event): the first time a process counts
anything for a (name, hostname, queue_name), it creates every worker-side state counter for
it at 0 (`failed` with exception=""; never `sent`), so `failed / (succeeded + failed)` has a
denominator for a task that always fails; `hostname` is the host part of the node name
("celery@web1" -> "web1", celery.utils.nodesplit); celery_task_runtime observes successful
runs only, and celery_task_execution_seconds every finished run.

connect() wires the signal receivers; ObservedTask (the app's task_cls) brings the Request
hooks for what Celery signals nowhere: a requeue (reject) and soft/hard time-limit hits.
"""
from __future__ import annotations

import socket
import time
from datetime import datetime

from celery import Task, signals
from celery.exceptions import TimeLimitExceeded
from celery.worker import state as worker_state
from celery.worker.request import Request
from prometheus_client import Counter, Histogram

from . import multiprocess
from .celery_workers import host

PUBLISHED_HEADER = "published_at"  # epoch seconds, set by the producer, read by the child
RUNTIME_BUCKETS = Histogram.DEFAULT_BUCKETS  # celery-exporter's default --buckets
# celery-exporter's --queue-wait-buckets (PR #386): queue wait runs from ~0 to minutes.
QUEUE_WAIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, float("inf"))

_LABELS = ["name", "hostname", "queue_name"]


def _counter(event: str, doc: str, labels=_LABELS) -> Counter:
    return Counter(f"celery_task_{event}", doc, labels)


SENT = _counter("sent", "Task messages published (counted by the producer after the publish).")
RECEIVED = _counter("received", "Task messages the worker received.")
STARTED = _counter("started", "Task executions started.")
SUCCEEDED = _counter("succeeded", "Task executions that succeeded.")
FAILED = _counter("failed", "Task executions that failed.", ["name", "hostname", "exception", "queue_name"])
RETRIED = _counter("retried", "Task executions that failed and will be retried.")
REVOKED = _counter("revoked", "Tasks revoked (including expired and terminated).")
REJECTED = _counter("rejected", "Task messages the worker rejected (requeued or dropped).")
TIME_LIMIT = _counter("time_limit_exceeded", "Task executions that hit a time limit.", [*_LABELS, "limit"])
RUNTIME = Histogram("celery_task_runtime", "Run time in seconds of task executions that succeeded.", _LABELS,
                    buckets=RUNTIME_BUCKETS)
EXECUTION = Histogram("celery_task_execution_seconds", "Run time in seconds of every finished task execution "
                      "(succeeded, failed or retried).", _LABELS, buckets=RUNTIME_BUCKETS)
QUEUE_WAIT = Histogram("celery_task_queue_wait_time", "Seconds from publish (or ETA) to start.", _LABELS,
                       buckets=QUEUE_WAIT_BUCKETS)

_started_at: dict[str, float] = {}  # task id -> perf_counter at prerun (one entry per running task)
_zeroed: set[tuple[str, str, str]] = set()  # (name, hostname, queue) this process created at 0


def _queue(delivery_info) -> str:
    return (delivery_info or {}).get("routing_key") or "celery"


def _seen(name: str, hostname: str, queue: str) -> tuple[str, str, str]:
    """Create every worker-side state counter of these labels at 0, once per process; return them."""
    labels = (name, hostname, queue)
    if labels not in _zeroed:
        _zeroed.add(labels)
        for counter in (RECEIVED, STARTED, SUCCEEDED, RETRIED, REVOKED, REJECTED):
            counter.labels(*labels)  # labels() writes the 0 sample (into this process's file)
        FAILED.labels(name, hostname, "", queue)
    return labels


def _task_labels(task) -> tuple[str, str, str]:
    req = task.request
    return _seen(task.name, host(req.hostname), _queue(req.delivery_info))


def _request_labels(request: Request) -> tuple[str, str, str]:
    return _seen(request.task_name, host(request.hostname), _queue(request.delivery_info))


# --- producer side (web processes, beat, sweeper, tasks that publish tasks) ----------------
def _on_before_publish(sender=None, headers=None, **_):
    if headers is not None and PUBLISHED_HEADER not in headers:
        headers[PUBLISHED_HEADER] = time.time()  # protocol 2: headers become request attributes


def _on_after_publish(sender=None, routing_key=None, exchange=None, **_):
    SENT.labels(sender or "", socket.gethostname(), routing_key or exchange or "celery").inc()


# --- worker main process ----------------------------------------------------------------------
def _on_worker_init(sender=None, **_):
    multiprocess.setup("celery-main")


def _on_received(sender=None, request=None, **_):
    RECEIVED.labels(*_request_labels(request)).inc()


def _on_revoked(sender=None, request=None, **_):
    # task_revoked passes a Request when a running task is terminated, but a task Context when
    # a revoked message is discarded before it ran (no task_name there; the sender is the task).
    name = getattr(request, "task_name", None) or getattr(request, "task", None) or getattr(sender, "name", "")
    hostname = host(getattr(request, "hostname", None))
    REVOKED.labels(*_seen(str(name), hostname, _queue(getattr(request, "delivery_info", None)))).inc()


def _on_unknown_rejected(sender=None, message=None, **_):
    headers = getattr(message, "headers", None) or {}  # an unknown or malformed task message
    REJECTED.labels(*_seen(str(headers.get("task", "")), host(str(getattr(sender, "hostname", "") or "")),
                           _queue(getattr(message, "delivery_info", None)))).inc()


# --- pool child ---------------------------------------------------------------------------------
def _on_process_init(**_):
    multiprocess.setup("celery-child")


def _on_prerun(sender=None, task_id=None, task=None, **_):
    labels = _task_labels(task)
    STARTED.labels(*labels).inc()
    now = time.time()
    published = getattr(task.request, PUBLISHED_HEADER, None)
    if published is not None:
        eta = task.request.eta
        since = max(float(published), _epoch(eta) if eta else 0.0)  # an ETA delay is not waiting
        QUEUE_WAIT.labels(*labels).observe(max(0.0, now - since))
    _started_at[task_id] = time.perf_counter()


def _on_postrun(sender=None, task_id=None, task=None, **_):
    started = _started_at.pop(task_id, None)
    if started is not None:
        EXECUTION.labels(*_task_labels(task)).observe(time.perf_counter() - started)


def _on_success(sender=None, **_):
    labels = _task_labels(sender)
    SUCCEEDED.labels(*labels).inc()
    started = _started_at.get(getattr(sender.request, "id", None))  # task_success comes before task_postrun
    if started is not None:
        RUNTIME.labels(*labels).observe(time.perf_counter() - started)


def _on_failure(sender=None, exception=None, **_):
    if isinstance(exception, TimeLimitExceeded):
        return  # counted by ObservedRequest.on_timeout, whichever Celery version signals it
    name, hostname, queue = _task_labels(sender)
    FAILED.labels(name, hostname, type(exception).__name__, queue).inc()


def _on_retry(sender=None, request=None, **_):
    RETRIED.labels(*_seen(sender.name, host(request.hostname), _queue(request.delivery_info))).inc()


def _epoch(eta) -> float:
    if isinstance(eta, str):
        eta = datetime.fromisoformat(eta)
    return eta.timestamp()


class ObservedRequest(Request):
    """Counts what no Celery signal reports: rejected messages and time-limit hits."""

    def reject(self, requeue=False):
        REJECTED.labels(*_request_labels(self)).inc()
        return super().reject(requeue=requeue)

    def on_timeout(self, soft, timeout):
        name, hostname, queue = _request_labels(self)
        TIME_LIMIT.labels(name, hostname, queue, "soft" if soft else "hard").inc()
        if not soft and not worker_state.should_terminate:
            # The child was killed: count the failure here (Celery >= 5.5 also sends task_failure
            # from this method; _on_failure skips TimeLimitExceeded so it is counted once).
            FAILED.labels(name, hostname, "TimeLimitExceeded", queue).inc()
        return super().on_timeout(soft, timeout)


class ObservedTask(Task):
    """The app's base task class: brings ObservedRequest."""

    Request = ObservedRequest


def connect() -> None:
    """Connect the receivers (weak=False: they are module functions, kept for the process's life)."""
    for signal, receiver in [
        (signals.before_task_publish, _on_before_publish),
        (signals.after_task_publish, _on_after_publish),
        (signals.worker_init, _on_worker_init),
        (signals.task_received, _on_received),
        (signals.task_revoked, _on_revoked),
        (signals.task_rejected, _on_unknown_rejected),
        (signals.worker_process_init, _on_process_init),
        (signals.task_prerun, _on_prerun),
        (signals.task_postrun, _on_postrun),
        (signals.task_success, _on_success),
        (signals.task_failure, _on_failure),
        (signals.task_retry, _on_retry),
    ]:
        signal.connect(receiver, weak=False, dispatch_uid=f"obs.{receiver.__name__}")
