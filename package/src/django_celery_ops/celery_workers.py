"""Worker liveness and capacity, from heartbeats only: up/down, tasks active, pool size, queues.

Worker side: with each heartbeat (every 2 s) the worker's main process also sends a small
`worker-ops` event with its pool size and the queues it consumes. Exporter side: a
WorkerTracker fed by the `worker.#` events alone (the broker filters them by routing key, so
the exporter's load does not grow with the task rate). A worker that says goodbye
(worker-offline: a warm or cold shutdown) is forgotten at once: a redeploy or a temporary worker
leaves no `up 0` series to page on. A worker is down when no heartbeat came for `timeout`
seconds: a SIGKILLed or lost worker sends nothing, so silence is the only signal, and it stays
down until forgotten after the purge delay. Silence is judged only while the exporter's event
connection is up: a broker outage is not a fleet of dead workers.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from functools import lru_cache

from celery import signals
from celery.utils.nodenames import nodesplit

OPS_EVENT = "worker-ops"
_consumer = {"ref": None}  # the worker's Consumer, set when the worker is ready (main process only)


@lru_cache(maxsize=256)
def host(nodename: str | None) -> str:
    """celery-exporter's hostname label (its get_hostname): "celery@web1" -> "web1", "web1" -> "web1"."""
    return nodesplit(nodename)[1] if nodename else ""


def _on_worker_ready(sender=None, **_):
    _consumer["ref"] = sender


def _on_heartbeat(sender=None, **_):
    consumer = _consumer["ref"]
    if consumer is None or not getattr(sender, "eventer", None):
        return
    queues = sorted(q.name for q in getattr(consumer.task_consumer, "queues", []) or [])
    sender.eventer.send(OPS_EVENT, concurrency=consumer.pool.num_processes, queues=queues)


def connect() -> None:
    """Connect the worker-side receivers."""
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="obs.worker_ready")
    signals.heartbeat_sent.connect(_on_heartbeat, weak=False, dispatch_uid="obs.heartbeat_sent")


@dataclass
class WorkerState:
    up: bool = True
    last_seen: float = 0.0  # monotonic time of the last event received from it
    active: int = 0
    concurrency: int | None = None
    queues: list[str] = field(default_factory=list)


class WorkerTracker:
    """Worker state from worker events; thread-safe (events arrive on one thread, scrapes on others)."""

    def __init__(self, timeout: float, clock=time.monotonic):
        self.timeout, self._clock = timeout, clock
        self._lock = threading.Lock()
        self._workers: dict[str, WorkerState] = {}
        self._departed: dict[str, float] = {}  # nodename -> when it said goodbye (for hosts())
        self._listening_since: float | None = None

    def handlers(self) -> dict:
        return {"worker-heartbeat": self._on_alive, "worker-online": self._on_alive,
                OPS_EVENT: self._on_ops, "worker-offline": self._on_offline}

    def listening(self, yes: bool) -> None:
        """The event connection came up (True) or went down (False)."""
        with self._lock:
            self._listening_since = self._clock() if yes else None

    def listening_since(self) -> float | None:
        """When the event connection came up, None while it is down."""
        with self._lock:
            return self._listening_since

    def _seen(self, event: dict) -> WorkerState:
        self._departed.pop(event["hostname"], None)
        worker = self._workers.setdefault(event["hostname"], WorkerState())
        worker.up, worker.last_seen = True, self._clock()
        return worker

    def _on_alive(self, event: dict) -> None:
        with self._lock:
            self._seen(event).active = int(event.get("active") or 0)

    def _on_ops(self, event: dict) -> None:
        with self._lock:
            worker = self._seen(event)
            worker.concurrency, worker.queues = event.get("concurrency"), list(event.get("queues") or [])

    def _on_offline(self, event: dict) -> None:
        with self._lock:
            self._workers.pop(event["hostname"], None)
            self._departed[event["hostname"]] = self._clock()

    def _judge(self, now: float) -> None:
        if self._listening_since is not None:
            for worker in self._workers.values():
                if worker.up and now - max(worker.last_seen, self._listening_since) > self.timeout:
                    worker.up, worker.active = False, 0

    def snapshot(self) -> dict[str, WorkerState]:
        """Current state; marks down the workers silent for longer than the timeout."""
        with self._lock:
            self._judge(self._clock())
            return {name: WorkerState(w.up, w.last_seen, w.active, w.concurrency, list(w.queues))
                    for name, w in self._workers.items()}

    def hosts(self) -> dict[str, float | None]:
        """Each known hostname label (host()): None while a node of it is up, else when one was last seen."""
        with self._lock:
            self._judge(self._clock())
            seen: dict[str, list[float]] = {}
            up: set[str] = set()
            for nodename, when in self._departed.items():
                seen.setdefault(host(nodename), []).append(when)
            for nodename, worker in self._workers.items():
                seen.setdefault(host(nodename), []).append(worker.last_seen)
                if worker.up:
                    up.add(host(nodename))
            return {name: None if name in up else max(times) for name, times in seen.items()}

    def forget(self, after: float) -> None:
        """Drop workers down for longer than `after` seconds (0: never), as celery-exporter's purge."""
        if after <= 0:
            return
        with self._lock:
            now = self._clock()
            self._judge(now)
            for name in [n for n, w in self._workers.items() if not w.up and now - w.last_seen > after]:
                del self._workers[name]
            for name in [n for n, seen in self._departed.items() if now - seen > after]:
                del self._departed[name]
