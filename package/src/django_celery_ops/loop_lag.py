"""Event-loop lag of the ASGI tier, and the stack of whatever blocks the loop.

A task sleeps for a short interval and measures how late the loop woke it: the lag. A sync
call inside an async view (time.sleep, requests.get, a Django ORM call without sync_to_async)
stops the whole loop and shows up as lag. The lag is only known once the loop runs again, when
the culprit has returned, so a watchdog thread looks at the loop's heartbeat and, when it is
late by LOOP_LAG_LOG_SECONDS (DJANGO_CELERY_OPS), logs the loop thread's stack while it is still stuck.
"""
from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import traceback

from prometheus_client import Histogram

from . import conf

log = logging.getLogger("django_celery_ops.loop_lag")

event_loop_lag_seconds = Histogram(
    "django_asgi_event_loop_lag_seconds", "How late the event loop ran a timer it had scheduled.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))


class LoopMonitor:
    def __init__(self, interval: float, log_after: float):
        self.interval, self.log_after = interval, log_after
        self.heartbeat = time.monotonic()
        self.loop_thread = threading.get_ident()
        self.task: asyncio.Task | None = None
        self.stop_event = threading.Event()

    def start(self) -> None:
        """Start in the running loop's thread."""
        self.loop_thread = threading.get_ident()
        self.task = asyncio.get_running_loop().create_task(self._tick(), name="event-loop-lag")
        threading.Thread(target=self._watch, name="event-loop-watchdog", daemon=True).start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.task is not None:
            self.task.cancel()

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            event_loop_lag_seconds.observe(max(0.0, loop.time() - due))
            self.heartbeat = time.monotonic()

    def _watch(self) -> None:
        reported = 0.0  # the heartbeat whose stall was already logged
        poll = max(0.02, min(self.log_after, self.interval) / 2)
        while not self.stop_event.wait(poll):
            beat = self.heartbeat
            stalled = time.monotonic() - beat - self.interval
            if stalled < self.log_after or beat == reported:
                continue
            reported = beat
            frame = sys._current_frames().get(self.loop_thread)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no frame)\n"
            log.warning("event loop blocked for %.3f s so far; the loop thread is at:\n%s", stalled,
                        stack.rstrip(), extra={"event_loop_blocked_seconds": round(stalled, 3)})


_monitor: dict = {"pid": None, "monitor": None}


def ensure_started() -> LoopMonitor:
    """Start the monitor once per process, in the running loop (called on every request: no system call)."""
    monitor = _monitor["monitor"]
    if monitor is None or _monitor["pid"] is None:
        monitor = LoopMonitor(conf.get("LOOP_LAG_INTERVAL_SECONDS"), conf.get("LOOP_LAG_LOG_SECONDS"))
        monitor.start()
        _monitor.update(pid=os.getpid(), monitor=monitor)
    return monitor


def _forked() -> None:
    _monitor["pid"] = None  # the parent's monitor (its task and thread) did not come along


os.register_at_fork(after_in_child=_forked)


def instrument(app):
    """Wrap an ASGI app: answer the lifespan protocol (Django does not) and run the lag monitor."""
    async def application(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    ensure_started()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    if _monitor["monitor"] is not None:
                        _monitor["monitor"].stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        ensure_started()  # servers without lifespan
        return await app(scope, receive, send)

    return application


__all__ = ["LoopMonitor", "ensure_started", "event_loop_lag_seconds", "instrument"]
