"""What each worker is serving, kept where the master can read it after the worker died.

A worker keeps its requests in flight in a small shared-memory file (an mmap: a write is a
memory copy, no syscall) and arms faulthandler to dump every thread's stack to a pre-opened
file when the master's SIGABRT (or a crash signal) arrives. faulthandler writes from the C signal handler without
taking any lock, so the dump works even when the worker is stuck inside C code or holds a
lock itself; then the previous handler (gunicorn's) runs as before. The master reads both
files when it reaps the worker, after the process is gone: nothing is read half-written.
"""
from __future__ import annotations

import faulthandler
import itertools
import json
import mmap
import os
import threading
from threading import get_ident
from time import monotonic, time_ns

_SIZE = 16384
_MAX_SHOWN = 20  # an ASGI worker may serve thousands at once; the oldest few tell the story
_HEADER = 4


# An entry of `inflight`: a list, cheaper to make than a dict (one per request).
_VIEW, _METHOD, _PATH, _RID, _STARTED, _THREAD, _MONOTONIC = range(7)

# The record has two forms, told apart by the top bit of its size header:
# - JSON (flush()): {"pid", "served", "in_flight", "requests": [{"view", "method", "path",
#   "request_id", "started"}, ...], "exit"}, what collect() returns;
# - one request in flight and no exit (a sync worker, every request; flush_one()): the fields
#   joined by NUL, UTF-8, then the view in a fixed field of _VIEW_WIDTH bytes padded with NULs:
#   served, method, path, request_id, started (time.time_ns()), view. One join and one encode
#   instead of a JSON document, and set_view() writes only the view's field. collect() turns
#   it into the JSON form's dict. A value holding a NUL (or not a str) goes the JSON way.
_ONE = 1 << 31
_VIEW_WIDTH = 96
# How long a writer waits for the record's lock (held for a memory copy) before it skips the
# write and counts an instrumentation error: never a request, nor a worker's exit, stuck on it.
_LOCK_TIMEOUT = 1.0


class _Record:
    def __init__(self, path: str):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, _SIZE)
            self.mm = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self.lock = threading.Lock()
        self.inflight: dict[int, list] = {}
        self.served = 0
        self.exit: dict | None = None
        self.ids = itertools.count()
        self.pid = os.getpid()  # the worker's: arm() runs after the fork
        # The token of the request flush_one() wrote, and where its view's field is; None when
        # the mmap holds anything else.
        self.fast_token: int | None = None
        self.view_at = 0

    def flush(self) -> None:
        self.fast_token = None
        shown = sorted(self.inflight.values(), key=_by_start)[:_MAX_SHOWN]
        body = _encode({"pid": self.pid, "served": self.served, "in_flight": len(self.inflight),
                        "requests": [_entry_dict(e) for e in shown], "exit": self.exit}).encode()
        if len(body) > _SIZE - _HEADER:
            body = _encode({"pid": self.pid, "served": self.served, "in_flight": len(self.inflight),
                            "requests": [], "exit": self.exit, "truncated": True}).encode()
        self.write(body)

    def write(self, body: bytes, form: int = 0) -> None:
        self.mm[_HEADER:_HEADER + len(body)] = body
        self.mm[:_HEADER] = (len(body) | form).to_bytes(_HEADER, "little")

    def flush_one(self, token: int, entry: list) -> None:
        """flush() when the only request in flight is entry and no exit is noted, in the short form."""
        try:
            head = "\0".join((str(self.served), entry[_METHOD], entry[_PATH], entry[_RID], str(entry[_STARTED]), ""))
            view = _padded_view(entry[_VIEW])
        except (TypeError, AttributeError):  # a value that is not a str (None, bytes, an int)
            view = None
        except Exception:  # not expected here: counted, and the general form written instead
            _failed("begin")
            view = None
        if view is None or head.count("\0") != 5 or len(head) * 4 + _VIEW_WIDTH > _SIZE - _HEADER:
            self.flush()
            return
        head = head.encode("utf-8", "surrogatepass")
        self.write(head + view, _ONE)
        self.fast_token, self.view_at = token, _HEADER + len(head)

    def idle(self) -> None:
        """Nothing in flight, no exit: size 0, which collect() reads as {} (no request, no exit),
        what the master makes of the full idle record (its exit and requests are all it reads)."""
        self.fast_token = None
        self.mm[:_HEADER] = _IDLE


_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(..., separators=...) without a new encoder
_IDLE = bytes(_HEADER)
_PADDED: dict = {}  # view names, encoded and padded once
_CACHE_MAX = 4096


def _by_start(entry: list) -> float:
    return entry[_MONOTONIC]


def _padded_view(view: str) -> bytes | None:
    """The view's field of the short form: UTF-8 padded with NULs to _VIEW_WIDTH; None when it does not fit."""
    padded = _PADDED.get(view)
    if padded is None:
        raw = view.encode("utf-8", "surrogatepass")  # AttributeError for a view that is not a str
        if len(raw) > _VIEW_WIDTH or b"\0" in raw:
            return None
        padded = raw.ljust(_VIEW_WIDTH, b"\0")
        if len(_PADDED) < _CACHE_MAX:
            _PADDED[view] = padded
    return padded


def _failed(stage: str) -> None:
    """Count and log the exception being handled as an instrumentation error (from an except block)."""
    try:
        from .middleware import instrumentation_failed  # here, not at import: it imports this module
    except Exception:
        return
    instrumentation_failed(stage)


def _lock_timed_out(stage: str) -> None:
    """The record's lock was not acquired within _LOCK_TIMEOUT: count it, the write is skipped."""
    try:
        raise TimeoutError(f"evidence lock not acquired within {_LOCK_TIMEOUT}s: record not written")
    except TimeoutError:
        _failed(stage)


def _started_seconds(started):
    return started / 1e9 if type(started) is int else started


def _entry_dict(entry: list) -> dict:
    """What the master reads of a request (thread_id and monotonic are for in_flight())."""
    return {"view": entry[_VIEW], "method": entry[_METHOD], "path": entry[_PATH], "request_id": entry[_RID],
            "started": _started_seconds(entry[_STARTED])}


def _read_one(body: bytes, pid: int) -> dict:
    """The JSON form's dict of a short-form body (the master, in collect())."""
    if len(body) <= _VIEW_WIDTH:
        raise ValueError("short-form record shorter than its view's field")
    head, view = body[:-_VIEW_WIDTH], body[-_VIEW_WIDTH:].rstrip(b"\0")
    served, method, path, rid, started, _ = head.decode("utf-8", "surrogatepass").split("\0")
    try:
        view = view.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # a multi-byte name cut by a kill during set_view(): keep the rest
        view = view.decode("utf-8", "replace")
    request = {"view": view, "method": method, "path": path, "request_id": rid, "started": int(started) / 1e9}
    return {"pid": pid, "served": int(served), "in_flight": 1, "requests": [request], "exit": None}


_record: _Record | None = None
_stack_file = None


def paths(state_dir: str, pid: int) -> tuple[str, str]:
    """The request record and stack dump files of the worker with this pid."""
    return os.path.join(state_dir, f"requests-{pid}.json"), os.path.join(state_dir, f"stack-{pid}.txt")


def arm(state_dir: str) -> None:
    """In a worker: open its record, and dump all stacks to its stack file on SIGABRT."""
    global _record, _stack_file
    record_path, stack_path = paths(state_dir, os.getpid())
    _record = _Record(record_path)
    _record.flush()
    _stack_file = open(stack_path, "w")  # noqa: SIM115 (open for the process's life: the handler only write()s)
    # SIGABRT is one of faulthandler's fatal signals: the dump runs first, then the handler that
    # was there before (gunicorn's, which exits the worker) as if faulthandler were not there.
    faulthandler.enable(file=_stack_file, all_threads=True)


def begin(view: str, method: str, path: str, request_id: str) -> int | None:
    """Note a request starting; return a token for end(), None when no record is armed.

    The only request in flight (a sync worker: every request) is written to the record now,
    with its view as given; set_view() then overwrites only the view. With others in flight the
    record is written at set_view(), as it was before (one full write per request, not two).
    """
    record = _record
    if record is None:
        return None
    entry = [view, method, path[:300], request_id, time_ns(), get_ident(), monotonic()]
    lock = record.lock
    # Not `with`: this runs three times per request, and `with` costs more on 3.11. Released only
    # when acquired: a timeout (or a signal's exception raised in the wait) leaves it untouched.
    if not lock.acquire(True, _LOCK_TIMEOUT):
        _lock_timed_out("begin")
        return None
    try:
        token = next(record.ids)
        inflight = record.inflight
        inflight[token] = entry
        record.served += 1
        if len(inflight) == 1 and record.exit is None:
            record.flush_one(token, entry)
    finally:
        lock.release()
    return token


def set_view(token: int | None, view: str) -> None:
    """Name the view once the URL resolved."""
    record = _record
    if record is None or token is None:
        return
    lock = record.lock
    if not lock.acquire(True, _LOCK_TIMEOUT):
        _lock_timed_out("begin")
        return
    try:
        entry = record.inflight.get(token)
        if entry is not None:
            entry[_VIEW] = view
            if record.fast_token == token and len(record.inflight) == 1:
                try:
                    padded = _PADDED.get(view) or _padded_view(view)
                except (TypeError, AttributeError):  # a view that is not a str
                    padded = None
                if padded is not None:
                    at = record.view_at
                    record.mm[at:at + _VIEW_WIDTH] = padded
                    return
            record.flush()
    finally:
        lock.release()


def end(token: int | None) -> None:
    record = _record
    if record is None or token is None:
        return
    lock = record.lock
    if not lock.acquire(True, _LOCK_TIMEOUT):
        _lock_timed_out("end")
        return
    try:
        record.inflight.pop(token, None)
        if not record.inflight and record.exit is None:
            record.idle()
        else:
            record.flush()
    finally:
        lock.release()


def in_flight() -> list[dict]:
    """The requests this process is serving now, oldest first ([] when no record is armed).

    Each: thread_id (threading.get_ident() of the thread that began it: under ASGI, the event
    loop's), started (time.monotonic()), view (UNRESOLVED until the URL resolved), method, path,
    request_id. A copy, taken under the record's lock: cheap enough to call every second.
    """
    record = _record
    if record is None:
        return []
    with record.lock:
        shown = [{"thread_id": e[_THREAD], "started": e[_MONOTONIC], "view": e[_VIEW], "method": e[_METHOD],
                  "path": e[_PATH], "request_id": e[_RID]} for e in record.inflight.values()]
    shown.sort(key=lambda e: e["started"])
    return shown


def served() -> int:
    return _record.served if _record else 0


def note_exit(code: int, recycled: bool) -> None:
    """In a worker that is ending in Python: leave its exit code for the master."""
    record = _record
    if record is None:
        return
    lock = record.lock
    if not lock.acquire(True, _LOCK_TIMEOUT):  # a thread (or the frame this exit interrupted) holds it
        _lock_timed_out("evidence")
        return
    try:
        record.exit = {"code": code, "recycled": recycled}
        record.flush()
    finally:
        lock.release()


def parse(raw: bytes, pid: int) -> dict:
    """The record in a record file's bytes ({} when idle or unreadable), in the JSON form's shape.

    Never raises: the bytes may be torn (a worker killed mid-write) or anything at all, and the
    master reads them while reaping. What it returns has the types the master relies on, or is {}.
    """
    try:
        size = int.from_bytes(raw[:_HEADER], "little")
        form, size = size & _ONE, size & ~_ONE
        if not 0 < size <= len(raw) - _HEADER:
            return {}
        if form:
            record = _read_one(raw[_HEADER:_HEADER + size], pid)
        else:
            record = json.loads(raw[_HEADER:_HEADER + size])
        return record if _well_formed(record) else {}
    except Exception:  # ValueError, UnicodeDecodeError, RecursionError (nested too deep), TypeError...
        return {}


_OPTIONAL_STR = (str, type(None))


def _is_int(value) -> bool:
    return type(value) is int


def _well_formed(record) -> bool:
    """The record has the JSON form's shape: what exit_reason() and the timeout report read of it."""
    if type(record) is not dict:
        return False
    if not all(_is_int(record.get(k, 0)) for k in ("pid", "served", "in_flight")):
        return False
    exit_info = record.get("exit")
    if exit_info is not None and not (type(exit_info) is dict and _is_int(exit_info.get("code", 0))
                                      and type(exit_info.get("recycled", False)) is bool):
        return False
    requests = record.get("requests", [])
    if type(requests) is not list:
        return False
    for request in requests:
        if type(request) is not dict:
            return False
        if not all(isinstance(request.get(k), _OPTIONAL_STR) for k in ("view", "method", "path", "request_id")):
            return False
        started = request.get("started")
        if started is not None and type(started) not in (int, float):
            return False
    return True


def collect(state_dir: str, pid: int) -> tuple[dict, str]:
    """In the master, after reaping: the worker's last record and stack dump; both files removed."""
    record_path, stack_path = paths(state_dir, pid)
    record, stack = {}, ""
    try:
        with open(record_path, "rb") as f:
            raw = f.read()
        record = parse(raw, pid)
    except OSError:
        record = {}
    try:
        with open(stack_path, errors="replace") as f:
            stack = f.read()
    except OSError:
        pass
    for path in (record_path, stack_path):
        try:
            os.unlink(path)
        except OSError:
            pass
    return record, stack


__all__ = ["arm", "begin", "collect", "end", "in_flight", "note_exit", "parse", "paths", "served", "set_view"]
