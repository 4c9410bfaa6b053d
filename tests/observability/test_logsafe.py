"""Request-controlled text reaches a log line escaped: an injected CR/LF forges no line of its own."""
import io
import logging
import re
import time
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_celery_ops import gunicorn as hooks
from django_celery_ops.logsafe import escape, logfmt

FORGED = "FAKE 2026-01-01 00:00:00,000 ERROR app forged line"


@pytest.fixture
def log_lines():
    """Lines written through the project's log format by the named loggers, as a file would hold them."""
    stream, attached = io.StringIO(), []

    def attach(name: str):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]))
        logger = logging.getLogger(name)
        logger.addHandler(handler)
        attached.append((logger, handler, logger.level))
        logger.setLevel(logging.INFO)
        return lambda: stream.getvalue().splitlines()

    yield attach
    for logger, handler, level in attached:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.parametrize("raw, escaped", [
    ("/a\r\nb", "/a\\r\\nb"),
    ("/a\nb\tc", "/a\\nb\\tc"),
    ("\x1b[31mred\x00\x7f", "\\x1b[31mred\\x00\\x7f"),
    ("nel\x85 ls\u2028 ps\u2029", "nel\\x85 ls\\u2028 ps\\u2029"),
    ("back\\slash", "back\\\\slash"),
    ("caf\u00e9 /ok-path_1", "caf\u00e9 /ok-path_1"),  # printable text, non-ASCII included, is kept
])
def test_escape_leaves_no_control_or_line_break(raw, escaped):
    assert escape(raw) == escaped
    assert len(escape(raw).splitlines()) == 1
    assert all(c.isprintable() for c in escape(raw))


def test_logfmt_quotes_only_what_would_split_the_field():
    assert logfmt("drills:slow-view") == "drills:slow-view"
    assert logfmt("<unnamed view>") == '"<unnamed view>"'
    assert logfmt('a"b=c') == '"a\\"b=c"'
    assert logfmt("") == '""'
    assert logfmt("/x\r\ny") == "/x\\r\\ny"


@pytest.mark.django_db
@pytest.mark.parametrize("forged", [FORGED, "FAKE-ERROR-forged-line"], ids=["spaced", "one-word"])
@pytest.mark.parametrize("encoded", [True, False], ids=["percent-encoded", "raw"])
def test_slow_request_log_escapes_an_injected_line_break(log_lines, forged, encoded):
    if encoded:  # %0d%0a is decoded into request.path by Django
        environ = {"path": "/no-such/%0d%0a" + forged.replace(" ", "%20")}
    else:  # a raw newline in PATH_INFO (the test client would strip it from a URL)
        environ = {"path": "/no-such/", "PATH_INFO": "/no-such/\r\n" + forged}
    lines = log_lines("django_celery_ops.slow")
    with override_settings(DJANGO_CELERY_OPS={"SLOW_REQUEST_SECONDS": 1e-9}):  # every request is slow
        response = Client().get(**environ, HTTP_X_REQUEST_ID="rid\r\n" + forged)
    assert response.status_code == 404
    [line] = lines()
    assert " WARNING django_celery_ops.slow slow request view=" in line
    assert "/no-such/\\r\\n" + forged in line  # the path is there, its line break escaped
    assert "rid" not in line  # a request id that is not a safe token is replaced, never logged


def test_master_timeout_line_escapes_the_request_fields(log_lines, monkeypatch):
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    lines = log_lines("gunicorn.error")
    record = {"in_flight": 1, "requests": [{"view": "drills:worker-timeout", "method": "GET", "started": time.time(),
                                            "path": "/drills/%0d%0a\r\n" + FORGED, "request_id": "r-1"}]}
    hooks._report_timeout(SimpleNamespace(timeout=30), SimpleNamespace(pid=4242), record,
                          'File "app/drills/views.py", line 1, in worker_timeout\n  time.sleep(seconds)')
    out = lines()
    head, _, tail = out[0].partition(" running_seconds=")
    assert head.endswith('worker timeout: pid=4242 view=drills:worker-timeout method=GET '
                         f'path="/drills/%0d%0a\\r\\n{FORGED}" request_id=r-1')
    assert re.fullmatch(r"\d+\.\d{1,3} in_flight=1", tail), tail  # the running time is measured, not fixed
    assert out[1:] == ["stack of the stuck worker:", 'File "app/drills/views.py", line 1, in worker_timeout',
                       "  time.sleep(seconds)"]  # our own multi-line text, after the escaped fields
    assert not any(line.startswith("FAKE") for line in out)
