"""evidence.parse never raises and returns the types the master relies on; the hooks that read or
write evidence count a failure as an instrumentation error instead of breaking gunicorn."""
import json
import os
import threading
import types

import pytest
from prometheus_client import REGISTRY

from django_celery_ops import evidence
from django_celery_ops import gunicorn as hooks

PID = 4242


def _errors(stage: str) -> float:
    return REGISTRY.get_sample_value("django_instrumentation_errors_total", {"stage": stage}) or 0


def _json(body: bytes) -> bytes:
    return len(body).to_bytes(4, "little") + body


def _short(head: bytes, view: bytes) -> bytes:
    body = head + view.ljust(evidence._VIEW_WIDTH, b"\0")
    return (len(body) | evidence._ONE).to_bytes(4, "little") + body


def _head(served=b"1", method=b"GET", path=b"/a", rid=b"rid-1", started=b"1700000000000000000") -> bytes:
    return b"\0".join((served, method, path, rid, started, b""))


HOSTILE = [
    b"", b"\x01", b"\xff\xff\xff\xff", b"\x05\0\0\0abc",  # empty, short header, size past the end
    _json(b"[" * 5000 + b"]" * 5000),  # RecursionError in json, not a ValueError
    _json(b"\xff\xfe{}"),  # not UTF-8 (UnicodeDecodeError)
    _json(b"[1, 2]"), _json(b"42"), _json(b"null"), _json(b'"text"'),  # JSON, but not an object
    _json(b'{"requests": 3}'), _json(b'{"requests": [1]}'), _json(b'{"requests": [{"started": "yesterday"}]}'),
    _json(b'{"requests": [{"view": 7}]}'), _json(b'{"exit": "code"}'), _json(b'{"exit": {"code": "x"}}'),
    _json(b'{"exit": {"code": 0, "recycled": "yes"}}'), _json(b'{"in_flight": "many"}'), _json(b'{"served": 1.5}'),
    _short(b"", b""),  # no fields at all
    (5 | evidence._ONE).to_bytes(4, "little") + b"short",  # shorter than the view's field
    _short(b"1\0GET\0/a\0", b"v"),  # fields missing
    _short(_head(served=b"many"), b"v"), _short(_head(started=b"1e9"), b"v"),
    _short(_head(path=b"\xff\xfe"), b"v"),  # a torn head
]


@pytest.mark.parametrize("raw", HOSTILE)
def test_parse_never_raises_and_returns_an_empty_record_for_what_it_cannot_read(raw):
    assert evidence.parse(raw, PID) == {}


@pytest.mark.parametrize("raw", [None, 42, "text", object()])
def test_parse_of_something_not_bytes_is_an_empty_record(raw):
    assert evidence.parse(raw, PID) == {}


def test_parse_keeps_a_well_formed_json_record():
    record = {"pid": PID, "served": 3, "in_flight": 1, "exit": {"code": 1, "recycled": False},
              "requests": [{"view": "v", "method": None, "path": "/a", "request_id": "r", "started": 1.5}]}
    assert evidence.parse(_json(json.dumps(record).encode()), PID) == record


def test_a_torn_view_name_keeps_the_rest_of_the_record():
    view = "caf\u00e9-\u2603".encode()[:-1]  # a multi-byte name cut inside its last character
    record = evidence.parse(_short(_head(), view), PID)
    assert record["served"] == 1 and record["in_flight"] == 1 and record["exit"] is None
    [request] = record["requests"]
    assert (request["method"], request["path"], request["request_id"]) == ("GET", "/a", "rid-1")
    assert request["started"] == 1700000000.0
    assert request["view"].startswith("caf\u00e9-") and request["view"].endswith("\ufffd")


def test_a_surrogate_in_a_view_name_still_reads_back_exactly(armed):
    token = evidence.begin("<unnamed view>", "GET", "/a", "rid-1")
    evidence.set_view(token, "v\udcff")
    assert evidence.parse(bytes(armed.mm), os.getpid())["requests"][0]["view"] == "v\udcff"


@pytest.mark.parametrize("view", [None, 7, ["unhashable"]])  # AttributeError, AttributeError, TypeError
def test_flush_one_writes_a_view_that_is_not_a_str_as_json(armed, view):
    token = evidence.begin(view, "GET", "/a", "rid-1")
    assert not armed.mm[3] & 0x80  # the JSON form
    evidence.set_view(token, view)  # and set_view() does not raise on it either
    record = evidence.parse(bytes(armed.mm), os.getpid())
    # The master reads a view that is not a str as no record at all (a view name is a str or None).
    assert record == {} if view is not None else record["requests"][0]["view"] is None


def test_flush_one_counts_an_unexpected_error_and_writes_json(armed, monkeypatch):
    def broken(view):
        raise RuntimeError("a bug")

    monkeypatch.setattr(evidence, "_padded_view", broken)
    before = _errors("begin")
    evidence.begin("v", "GET", "/a", "rid-1")
    assert _errors("begin") == before + 1
    record = evidence.parse(bytes(armed.mm), os.getpid())
    assert not armed.mm[3] & 0x80 and record["requests"][0]["path"] == "/a"


def _held_elsewhere(lock):
    """Hold the lock in another thread until the returned event is set."""
    taken, release = threading.Event(), threading.Event()

    def hold():
        with lock:
            taken.set()
            release.wait(10)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    taken.wait(5)
    return release, thread


def test_a_lock_not_acquired_in_time_is_counted_and_skipped(armed, monkeypatch):
    monkeypatch.setattr(evidence, "_LOCK_TIMEOUT", 0.05)
    token = evidence.begin("v", "GET", "/a", "rid-1")
    release, thread = _held_elsewhere(armed.lock)
    try:
        before = {stage: _errors(stage) for stage in ("begin", "end", "evidence")}
        assert evidence.begin("w", "GET", "/b", "rid-2") is None
        evidence.set_view(token, "x")
        evidence.end(token)
        evidence.note_exit(0, recycled=False)
        assert _errors("begin") == before["begin"] + 2
        assert _errors("end") == before["end"] + 1 and _errors("evidence") == before["evidence"] + 1
    finally:
        release.set()
        thread.join(5)
    assert armed.lock.acquire(False)  # not leaked
    armed.lock.release()
    evidence.note_exit(0, recycled=True)  # and it works again once the lock is free
    assert evidence.parse(bytes(armed.mm), os.getpid())["exit"] == {"code": 0, "recycled": True}


def _server_and_worker(pid=PID, aborted=False):
    return types.SimpleNamespace(LISTENERS=[object()], timeout=30), types.SimpleNamespace(pid=pid, aborted=aborted)


@pytest.mark.parametrize("raw", [b"\xff" * 64, _json(b"[" * 5000), _short(_head(served=b"x"), b"v")])
def test_child_exit_reads_a_torn_record_as_no_exit(tmp_path, monkeypatch, raw):
    monkeypatch.setenv("OBS_GUNICORN_STATE_DIR", str(tmp_path))
    record_path, _ = evidence.paths(str(tmp_path), PID)
    with open(record_path, "wb") as f:
        f.write(raw)
    before = REGISTRY.get_sample_value("gunicorn_worker_exits_total", {"reason": "signal"}) or 0
    hooks.child_exit(*_server_and_worker())
    assert REGISTRY.get_sample_value("gunicorn_worker_exits_total", {"reason": "signal"}) == before + 1
    assert not os.path.exists(record_path)


def test_child_exit_counts_a_failure_instead_of_raising_into_the_arbiter(tmp_path, monkeypatch):
    monkeypatch.setenv("OBS_GUNICORN_STATE_DIR", str(tmp_path))

    def broken(state_dir, pid):
        raise KeyError("anything")

    monkeypatch.setattr(evidence, "collect", broken)
    before = _errors("evidence")
    hooks.child_exit(*_server_and_worker(aborted=True))
    assert _errors("evidence") == before + 1


def test_worker_exit_counts_a_failure_instead_of_raising(monkeypatch):
    def broken(code, recycled):
        raise OSError("record gone")

    monkeypatch.setattr(evidence, "note_exit", broken)
    before = _errors("evidence")
    hooks.worker_exit(None, types.SimpleNamespace(nr=1, max_requests=10))
    assert _errors("evidence") == before + 1
