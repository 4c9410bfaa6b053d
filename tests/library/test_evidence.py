"""The evidence record's fast paths write what the master reads from the general flush()."""
import os

import pytest

from django_celery_ops import evidence


def _read(record) -> dict:
    """What the master's collect() would read from the record now."""
    return evidence.parse(bytes(record.mm), os.getpid())


def _short_form(record) -> bool:
    return bool(record.mm[3] & 0x80)


def _same_as_flush(record) -> dict:
    """The record as the master reads it now, asserting that flush() (the JSON form) reads the same."""
    now = _read(record)
    record.flush()
    assert not _short_form(record) and _read(record) == now
    return now


@pytest.mark.parametrize("path", ["/healthz", "/caf\u00e9/\"quoted\"\\/\n", "/" + "x" * 400, "/\udcff-surrogate"])
def test_one_request_in_flight_reads_as_flush_writes_it(armed, path):
    token = evidence.begin("<unnamed view>", "GET", path, "rid-1")
    evidence.set_view(token, "drills:db-view\u2603")
    assert _short_form(armed)
    record = _same_as_flush(armed)
    assert record["in_flight"] == 1 and record["exit"] is None and record["pid"] == os.getpid()
    assert record["requests"][0]["view"] == "drills:db-view\u2603" and record["requests"][0]["path"] == path[:300]


def test_a_request_is_on_record_before_its_view_resolved(armed):
    import time

    token = evidence.begin("<unnamed view>", "GET", "/stuck-in-a-middleware", "rid-1")
    [entry] = _read(armed)["requests"]
    assert (entry["view"], entry["path"], entry["request_id"]) == ("<unnamed view>", "/stuck-in-a-middleware", "rid-1")
    assert isinstance(entry["started"], float) and abs(entry["started"] - time.time()) < 5  # the master subtracts it
    assert set(entry) == {"view", "method", "path", "request_id", "started"}
    evidence.set_view(token, "v")
    assert _read(armed)["requests"][0]["view"] == "v"


def test_set_view_writes_only_the_view(armed):
    token = evidence.begin("<unnamed view>", "GET", "/a", "rid-1")
    before, before_record = bytes(armed.mm), _read(armed)
    evidence.set_view(token, "drills:db-view")
    after = bytes(armed.mm)
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert changed and all(armed.view_at <= i < armed.view_at + evidence._VIEW_WIDTH for i in changed)
    assert _read(armed)["requests"][0] == {**before_record["requests"][0], "view": "drills:db-view"}


@pytest.mark.parametrize("view", ["v" * 96, "v" * 97, "v" * 200, "caf\u00e9" * 30, "nul\0in-view"])
def test_a_view_that_does_not_fit_its_field_is_written_as_json(armed, view):
    token = evidence.begin("<unnamed view>", "GET", "/a", "rid-1")
    evidence.set_view(token, view)
    assert _short_form(armed) == (len(view.encode()) <= evidence._VIEW_WIDTH and "\0" not in view)
    assert _same_as_flush(armed)["requests"][0]["view"] == view


@pytest.mark.parametrize("field", ["path", "request_id"])
def test_a_nul_in_a_field_is_written_as_json(armed, field):
    values = {"path": "/a", "request_id": "rid-1", field: "x\0y"}
    evidence.begin("<unnamed view>", "GET", values["path"], values["request_id"])
    assert not _short_form(armed)
    assert _read(armed)["requests"][0][field] == "x\0y"


def test_set_view_while_another_began_writes_both(armed):
    first = evidence.begin("<unnamed view>", "GET", "/a", "rid-a")
    second = evidence.begin("<unnamed view>", "GET", "/b", "rid-b")
    evidence.set_view(first, "a")
    record = _read(armed)
    assert record["in_flight"] == 2 and [(r["view"], r["path"]) for r in record["requests"]] == \
        [("a", "/a"), ("<unnamed view>", "/b")]
    evidence.end(first)
    evidence.set_view(second, "b")
    record = _read(armed)
    assert record["in_flight"] == 1 and [(r["view"], r["path"]) for r in record["requests"]] == [("b", "/b")]


def test_non_str_value_falls_back_to_the_encoder(armed):
    token = evidence.begin("<unnamed view>", None, "/x", "rid-1")
    evidence.set_view(token, "v")
    assert not _short_form(armed)
    assert _same_as_flush(armed)["requests"][0]["method"] is None


def test_a_torn_short_record_reads_as_none(armed):
    evidence.begin("<unnamed view>", "GET", "/a", "rid-1")
    raw = bytearray(armed.mm)
    raw[4:8] = b"\xff\xff\xff\xff"  # not UTF-8, fields missing
    assert evidence.parse(bytes(raw), os.getpid()) == {}


def test_two_in_flight_use_flush_oldest_first(armed):
    first = evidence.begin("<unnamed view>", "GET", "/a", "rid-a")
    second = evidence.begin("<unnamed view>", "GET", "/b", "rid-b")
    evidence.set_view(second, "b")
    record = _read(armed)
    assert record["in_flight"] == 2 and [r["path"] for r in record["requests"]] == ["/a", "/b"]
    evidence.end(first)
    record = _read(armed)
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
    assert set(_read(armed)["requests"][0]) == {"view", "method", "path", "request_id", "started"}
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


def _errors(stage: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("django_instrumentation_errors_total", {"stage": stage}) or 0


def _middleware_counting_in_flight(fail_on, response=None, raises=None):
    """A RequestMiddleware whose in-flight gauge records its ±1 and raises on the amounts in fail_on."""
    from django.http import HttpResponse

    from django_celery_ops.middleware import RequestMiddleware

    def get_response(request):
        if raises is not None:
            raise raises
        return response or HttpResponse("ok")

    mw = RequestMiddleware(get_response)
    applied = []

    def in_flight(amount):
        if amount in fail_on:
            raise OSError("slot file gone")
        applied.append(amount)

    mw.in_flight = in_flight
    return mw, applied


@pytest.mark.parametrize("fail_on", [(1,), (-1,), (1, -1)])
@pytest.mark.parametrize("raises", [None, ValueError("view failed"), SystemExit(1)])
def test_a_failing_in_flight_gauge_never_fails_the_request_and_never_unpairs(fail_on, raises):
    from django.test import RequestFactory

    mw, applied = _middleware_counting_in_flight(fail_on, raises=raises)
    before = _errors("begin") + _errors("end")
    request = RequestFactory().get("/healthz")
    if raises is None:
        assert mw(request).status_code == 200
    else:
        with pytest.raises(type(raises)):  # the view's own exception, not the gauge's
            mw(request)
    assert applied == ([] if 1 in fail_on else [1])  # a -1 only for a +1 that happened
    assert _errors("begin") + _errors("end") == before + (1 if 1 in fail_on else 1 if -1 in fail_on else 0)


def test_a_working_in_flight_gauge_pairs_every_request():
    from django.test import RequestFactory

    mw, applied = _middleware_counting_in_flight(())
    for _ in range(3):
        assert mw(RequestFactory().get("/healthz")).status_code == 200
    assert applied == [1, -1] * 3
