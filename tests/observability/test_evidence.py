"""The evidence record's fast paths write what the master reads from the general flush()."""
import json
import os
import sys

import pytest

from django_celery_ops import evidence


@pytest.fixture
def armed(tmp_path, monkeypatch):
    monkeypatch.setattr(evidence, "_stack_file", None)
    monkeypatch.setattr(evidence, "_record", None)
    # arm() enables faulthandler on its stack file; restore the default (stderr) afterwards
    import faulthandler
    evidence.arm(str(tmp_path))
    yield evidence._record
    faulthandler.enable(file=sys.__stderr__)
    evidence._stack_file.close()


def _raw(record) -> bytes:
    size = int.from_bytes(record.mm[:4], "little")
    return bytes(record.mm[4:4 + size])


@pytest.mark.parametrize("path", ["/healthz", "/caf\u00e9/\"quoted\"\\/\n", "/" + "x" * 400])
def test_one_request_in_flight_is_byte_identical_to_flush(armed, path):
    token = evidence.begin("<unnamed view>", "GET", path, "rid-1")
    evidence.set_view(token, "drills:db-view\u2603")
    fast = _raw(armed)
    armed.flush()
    assert fast == _raw(armed)
    assert json.loads(fast)["requests"][0]["view"] == "drills:db-view\u2603"


def test_non_str_value_falls_back_to_the_encoder(armed):
    token = evidence.begin("<unnamed view>", None, "/x", "rid-1")
    evidence.set_view(token, "v")
    fast = _raw(armed)
    armed.flush()
    assert fast == _raw(armed)


def test_two_in_flight_use_flush_oldest_first(armed):
    first = evidence.begin("<unnamed view>", "GET", "/a", "rid-a")
    second = evidence.begin("<unnamed view>", "GET", "/b", "rid-b")
    evidence.set_view(second, "b")
    record = json.loads(_raw(armed))
    assert record["in_flight"] == 2 and [r["path"] for r in record["requests"]] == ["/a", "/b"]
    evidence.end(first)
    record = json.loads(_raw(armed))
    assert record["in_flight"] == 1 and record["requests"][0]["path"] == "/b"


def test_in_flight_lists_the_requests_being_served_oldest_first(armed):
    import threading
    import time

    assert evidence.in_flight() == []
    t0 = time.monotonic()
    first = evidence.begin("<unnamed view>", "GET", "/a", "rid-a")
    second = evidence.begin("<unnamed view>", "POST", "/b", "rid-b")
    evidence.set_view(first, "a")
    shown = evidence.in_flight()
    assert [(r["view"], r["method"], r["path"], r["request_id"]) for r in shown] == \
        [("a", "GET", "/a", "rid-a"), ("<unnamed view>", "POST", "/b", "rid-b")]
    assert all(r["thread_id"] == threading.get_ident() and t0 <= r["started"] <= time.monotonic() for r in shown)
    assert set(shown[0]) == {"thread_id", "started", "view", "method", "path", "request_id"}
    # The master's record keeps its own keys: the wall-clock start, no thread id, no monotonic time.
    assert set(json.loads(_raw(armed))["requests"][0]) == {"view", "method", "path", "request_id", "started"}
    evidence.end(first)
    assert [r["request_id"] for r in evidence.in_flight()] == ["rid-b"]
    evidence.end(second)
    assert evidence.in_flight() == []


def test_in_flight_is_empty_without_a_record(monkeypatch):
    monkeypatch.setattr(evidence, "_record", None)
    assert evidence.in_flight() == []


def test_idle_record_reads_as_no_request_and_no_exit(armed, tmp_path):
    token = evidence.begin("<unnamed view>", "GET", "/a", "rid-a")
    evidence.set_view(token, "a")
    evidence.end(token)
    assert armed.mm[:4] == b"\0\0\0\0"
    record, _ = evidence.collect(str(tmp_path), os.getpid())
    assert record == {}
    assert record.get("exit") is None and (record.get("requests") or [{}]) == [{}]
    assert record.get("in_flight", 0) == 0


def test_exit_noted_after_idle_is_collected(armed, tmp_path):
    token = evidence.begin("<unnamed view>", "GET", "/a", "rid-a")
    evidence.end(token)
    evidence.note_exit(0, recycled=True)
    record, _ = evidence.collect(str(tmp_path), os.getpid())
    assert record["exit"] == {"code": 0, "recycled": True} and record["in_flight"] == 0


def test_request_in_flight_at_exit_keeps_flush(armed, tmp_path):
    evidence.note_exit(1, recycled=False)
    token = evidence.begin("<unnamed view>", "GET", "/a", "rid-a")
    evidence.set_view(token, "a")
    record, _ = evidence.collect(str(tmp_path), os.getpid())
    assert record["exit"] == {"code": 1, "recycled": False} and record["requests"][0]["view"] == "a"


@pytest.mark.parametrize("header", [None, ("HTTP_X_FORWARDED_PROTO", "https")])
@pytest.mark.parametrize("secure", [False, True])
@pytest.mark.parametrize("forwarded", [None, "https", "http", " https , http", "HTTPS"])
def test_transport_is_what_is_secure_says(settings, header, secure, forwarded):
    from django.test import RequestFactory

    from django_celery_ops.middleware import _transport_of

    settings.SECURE_PROXY_SSL_HEADER = header
    extra = {} if forwarded is None else {"HTTP_X_FORWARDED_PROTO": forwarded}
    request = RequestFactory().get("/healthz", secure=secure, **extra)
    assert _transport_of(header)(request) == ("https" if request.is_secure() else "http")
