"""The stack of a slow request, taken while it is still running.

A watchdog thread per worker process looks at the requests in flight (``evidence.in_flight()``:
thread, start, view, request id) a few times a second. A request running longer than
SLOW_REQUEST_SECONDS gets its stack written once, while it runs, long before the gunicorn
timeout can kill the worker: ``STACKS_DIR/<UTC time>-<pid>-<request id>.txt`` (a new file each
time, never an overwrite: the id may be the client's; the STACKS_KEEP newest kept) and a WARNING
line on ``django_celery_ops.slow`` with the request id and the file (with no STACKS_DIR the stack
follows the line itself). The stack comes from ``sys._current_frames()``: the thread serving the request.

- WSGI sync and gthread workers: the request's own thread.
- ASGI, a sync view: the request is served by the event loop thread, the view runs in a worker
  thread (sync_to_async). The file has the thread whose frames hold that request (found by its
  request id), and the loop thread's stack below it.
- ASGI, an async view that blocks the loop (a sync call inside it): the loop thread's stack, which
  is the view's own frames. (loop_lag.py logs the same stack for any blocked loop.)

Python code only: a thread holding the GIL in C code (a C extension that never releases it)
stops the watchdog too; then only the timeout's faulthandler dump (evidence.py) and
``make dump-workers`` (py-spy, from outside) see it.

Started in each gunicorn worker by the post_fork hook (gunicorn.py); other servers call start().
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback

from . import evidence, logsafe
from .middleware import _REQUEST_ID
from .profiling import prune, write_new

log = logging.getLogger("django_celery_ops.slow")

_state: dict = {"pid": None, "watchdog": None}
_MAX_DEPTH = 200


class Watchdog:
    def __init__(self, slow_seconds: float, directory: str, keep: int):
        self.slow_seconds, self.directory, self.keep = slow_seconds, directory, keep
        self.poll = min(0.25, max(0.02, slow_seconds / 4))
        self.dumped: set[tuple] = set()
        self.stop_event = threading.Event()

    def run(self) -> None:
        failures = 0
        while not self.stop_event.wait(self.poll):
            try:
                self.check()
            except Exception:  # the watchdog must outlive any one bad look; logged once, not 4 times a second
                failures += 1
                if failures == 1:
                    log.warning("slow-request watchdog failed (logged once per worker)", exc_info=True)

    def check(self, now: float | None = None) -> list[str]:
        """Dump every request in flight past the threshold not dumped yet; return the files (or "")."""
        entries = in_flight()
        now = time.monotonic() if now is None else now
        live = set()
        written = []
        for entry in entries:
            key = (entry.get("thread_id"), entry.get("started"), entry.get("request_id"))
            live.add(key)
            if key in self.dumped or now - entry["started"] < self.slow_seconds:
                continue
            self.dumped.add(key)
            written.append(self.dump(entry, now - entry["started"]))
        self.dumped &= live  # finished requests: forget them
        return written

    def dump(self, entry: dict, running: float) -> str:
        frames = sys._current_frames()
        text = stack_text(entry, frames)
        rid = entry.get("request_id") or "unknown"
        fields = {"view": entry.get("view"), "method": entry.get("method"), "path": entry.get("path"),
                  "request_id": rid, "running_seconds": round(running, 3), "pid": os.getpid()}
        line = " ".join(f"{k}={logsafe.logfmt(v)}" for k, v in fields.items())
        path = ""
        if self.directory:
            try:
                body = f"slow request still running: {line}\n\n{text}"
                path = write_new(self.directory, _file_name(rid), {".txt": body})
                prune(self.directory, ".txt", self.keep)
            except OSError:
                log.warning("could not write the stack of request %s", rid, exc_info=True)
                path = ""
        if path:
            log.warning("slow request still running: %s stack=%s", line, path,
                        extra={"slow_request_running": {**fields, "stack": path}})
        else:  # our own text on lines of its own; request fields are escaped
            log.warning("slow request still running: %s\n%s", line, text.rstrip(),
                        extra={"slow_request_running": fields})
        return path


def _file_name(rid: str) -> str:
    return rid if _REQUEST_ID.match(rid) else "invalid-request-id"  # the stem's time and pid come first


def _format(frame) -> str:
    return "".join(traceback.format_stack(frame, limit=_MAX_DEPTH)) if frame is not None else "  (no Python frame)\n"


def _holds_request(frame, request_id: str) -> bool:
    """Whether a frame of this thread's stack has a local `request` with this request id."""
    depth = 0
    while frame is not None and depth < _MAX_DEPTH:
        if "request" in frame.f_code.co_varnames:
            request = frame.f_locals.get("request")
            if request is not None and getattr(request, "request_id", None) == request_id:
                return True
        frame, depth = frame.f_back, depth + 1
    return False


def stack_text(entry: dict, frames: dict) -> str:
    """The stack of the request's thread; when another thread runs its view (ASGI, a sync view), that one first."""
    tid, rid = entry.get("thread_id"), entry.get("request_id")
    parts = []
    if rid:
        me = threading.get_ident()
        for other, frame in frames.items():
            if other not in (tid, me) and _holds_request(frame, rid):
                parts.append(f"Thread {other} (runs the view of this request):\n{_format(frame)}")
    names = {t.ident: t.name for t in threading.enumerate()}
    frame = frames.get(tid)
    role = "serving the request" if not parts else "serving the request: the event loop"
    parts.append(f"Thread {tid} {names.get(tid, '')!r} ({role}):\n{_format(frame)}")
    return "\n".join(parts)


# --- in-flight requests --------------------------------------------------------------------------

def in_flight() -> list[dict]:
    """This worker's requests in flight: evidence.in_flight() (thread_id, started: monotonic, view, ...)."""
    return evidence.in_flight()


# --- start ---------------------------------------------------------------------------------------

def _configured() -> Watchdog | None:
    from . import conf

    if not conf.get("SLOW_STACKS"):
        return None
    return Watchdog(conf.get("SLOW_REQUEST_SECONDS"), conf.get("STACKS_DIR"), conf.get("STACKS_KEEP"))


def _run_when_ready() -> None:
    """Wait for Django's settings (the app loads after post_fork), then watch."""
    from django.apps import apps

    while not apps.ready:
        time.sleep(0.1)
    try:
        watchdog = _configured()
    except Exception:
        log.warning("slow-request watchdog not started: bad settings", exc_info=True)
        return
    if watchdog is None:
        return
    _state["watchdog"] = watchdog
    watchdog.run()


def start() -> None:
    """Start the watchdog once per process (a gunicorn worker: post_fork). Never in a master that forks."""
    if _state["pid"] == os.getpid():
        return
    _state.update(pid=os.getpid(), watchdog=None)
    threading.Thread(target=_run_when_ready, name="slow-request-watchdog", daemon=True).start()


def stop() -> None:
    watchdog = _state.get("watchdog")
    if watchdog is not None:
        watchdog.stop_event.set()


__all__ = ["Watchdog", "in_flight", "stack_text", "start", "stop"]
