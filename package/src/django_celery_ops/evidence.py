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
import time
from threading import get_ident
from time import monotonic

_SIZE = 16384
_MAX_SHOWN = 20  # an ASGI worker may serve thousands at once; the oldest few tell the story
_HEADER = 4


class _Record:
    def __init__(self, path: str):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, _SIZE)
            self.mm = mmap.mmap(fd, _SIZE)
        finally:
            os.close(fd)
        self.lock = threading.Lock()
        self.inflight: dict[int, dict] = {}
        self.served = 0
        self.exit: dict | None = None
        self.ids = itertools.count()
        self.prefix = f'{{"pid":{os.getpid()},"served":'.encode()  # the pid is the worker's: arm() runs after the fork

    def flush(self) -> None:
        shown = sorted(self.inflight.values(), key=lambda e: e["started"])[:_MAX_SHOWN]
        # What _encode() of {"pid", "served", "in_flight", "requests", "exit"} writes, each request
        # with the master's keys only (thread_id and monotonic are for in_flight()).
        body = "".join(('{"pid":', str(os.getpid()), ',"served":', str(self.served), ',"in_flight":',
                        str(len(self.inflight)), ',"requests":[', ",".join(map(_entry_json, shown)),
                        '],"exit":', _encode(self.exit), "}")).encode()
        if len(body) > _SIZE - _HEADER:
            body = json.dumps({"pid": os.getpid(), "served": self.served, "in_flight": len(self.inflight),
                               "requests": [], "exit": self.exit, "truncated": True}).encode()
        self.write(body)

    def write(self, body: bytes) -> None:
        self.mm[_HEADER:_HEADER + len(body)] = body
        self.mm[:_HEADER] = len(body).to_bytes(_HEADER, "little")

    def flush_one(self, entry: dict) -> None:
        """flush() when the only request in flight is entry and no exit is noted (a sync worker,
        every request): the same bytes, without the sort and the encoder's walk of the dict."""
        body = b"".join((self.prefix, str(self.served).encode(), _ONE_IN_FLIGHT, _entry_json(entry).encode(),
                         _ONE_SUFFIX))
        if len(body) > _SIZE - _HEADER:
            self.flush()
            return
        self.write(body)

    def idle(self) -> None:
        """Nothing in flight, no exit: size 0, which collect() reads as {} (no request, no exit),
        what the master makes of the full idle record (its exit and requests are all it reads)."""
        self.mm[:_HEADER] = _IDLE


_encode = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps(..., separators=...) without a new encoder
_quote = json.encoder.encode_basestring_ascii  # what that encoder writes for a str (ensure_ascii)
_ONE_IN_FLIGHT = b',"in_flight":1,"requests":['
_ONE_SUFFIX = b'],"exit":null}'
_IDLE = bytes(_HEADER)
_KEYS = ("view", "method", "path", "request_id", "started")  # what the master reads of each request
_QUOTED: dict = {}  # view names and methods, quoted once
_QUOTED_MAX = 4096


def _q(value) -> str:
    quoted = _QUOTED.get(value)
    if quoted is None:
        quoted = _quote(value)
        if len(_QUOTED) < _QUOTED_MAX:
            _QUOTED[value] = quoted
    return quoted


def _entry_json(entry: dict) -> str:
    """_encode() of the entry's _KEYS, in this order (str values, a float)."""
    started = entry["started"]
    try:
        return "".join(('{"view":', _q(entry["view"]), ',"method":', _q(entry["method"]),
                        ',"path":', _quote(entry["path"]), ',"request_id":', _quote(entry["request_id"]),
                        ',"started":', float.__repr__(started) if type(started) is float else _encode(started), "}"))
    except TypeError:  # a value that is not a str (None): the encoder knows what to write
        return _encode({k: entry[k] for k in _KEYS})


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
    """Note a request starting; return a token for end(), None when no record is armed."""
    record = _record
    if record is None:
        return None
    entry = {"view": view, "method": method, "path": path[:300], "request_id": request_id, "started": time.time(),
             "thread_id": get_ident(), "monotonic": monotonic()}
    lock = record.lock
    lock.acquire()  # not `with`: this runs three times per request, and `with` costs more on 3.11
    try:
        token = next(record.ids)
        record.inflight[token] = entry
        record.served += 1
        # No flush here: set_view() writes the entry once the URL resolved, with the view in it.
    finally:
        lock.release()
    return token


def set_view(token: int | None, view: str) -> None:
    """Name the view once the URL resolved."""
    record = _record
    if record is None or token is None:
        return
    lock = record.lock
    lock.acquire()
    try:
        entry = record.inflight.get(token)
        if entry is not None:
            entry["view"] = view
            if len(record.inflight) == 1 and record.exit is None:
                record.flush_one(entry)
            else:
                record.flush()
    finally:
        lock.release()


def end(token: int | None) -> None:
    record = _record
    if record is None or token is None:
        return
    lock = record.lock
    lock.acquire()
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
        shown = [{"thread_id": e["thread_id"], "started": e["monotonic"], "view": e["view"], "method": e["method"],
                  "path": e["path"], "request_id": e["request_id"]} for e in record.inflight.values()]
    shown.sort(key=lambda e: e["started"])
    return shown


def served() -> int:
    return _record.served if _record else 0


def note_exit(code: int, recycled: bool) -> None:
    """In a worker that is ending in Python: leave its exit code for the master."""
    record = _record
    if record is None:
        return
    with record.lock:
        record.exit = {"code": code, "recycled": recycled}
        record.flush()


def collect(state_dir: str, pid: int) -> tuple[dict, str]:
    """In the master, after reaping: the worker's last record and stack dump; both files removed."""
    record_path, stack_path = paths(state_dir, pid)
    record, stack = {}, ""
    try:
        with open(record_path, "rb") as f:
            raw = f.read()
        size = int.from_bytes(raw[:_HEADER], "little")
        record = json.loads(raw[_HEADER:_HEADER + size]) if 0 < size <= len(raw) - _HEADER else {}
    except (OSError, ValueError):
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


__all__ = ["arm", "begin", "collect", "end", "in_flight", "note_exit", "paths", "served", "set_view"]
