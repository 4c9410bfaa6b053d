"""gunicorn hooks and settings: worker exits classified by what really ended the worker, request
limits from the environment (enforced by a real gunicorn), and an access log with escaped fields."""
import re
import runpy
import socket

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_celery_ops import gunicorn as hooks
from django_celery_ops.gunicorn import exit_reason
from tests.support import stack, web


@pytest.mark.parametrize(("aborted", "exit_info", "stopping", "reason"), [
    (True, {"code": 1, "recycled": False}, False, "timeout"),     # the master's SIGABRT after WORKER TIMEOUT
    (True, None, False, "timeout"),                               # ... and its SIGKILL when the abort did not end it
    (False, None, False, "signal"),                               # SIGKILL (OOM killer), SIGSEGV: no Python ran
    (False, {"code": 255, "recycled": False}, False, "crash"),    # an exception escaped the worker loop
    (False, {"code": 0, "recycled": True}, False, "recycled"),    # max_requests reached
    (False, {"code": 0, "recycled": False}, False, "shutdown"),   # told to stop (TERM, HUP, TTOU)
    (False, {"code": 0, "recycled": False}, True, "shutdown"),
    (False, None, True, "shutdown"),                              # killed at the end of a stop
])
def test_exit_reason(aborted, exit_info, stopping, reason):
    assert exit_reason(aborted, exit_info, stopping) == reason


# --- request limits and the access log (gunicorn.conf.py) ---------------------------------------
LIMIT_VARS = ("GUNICORN_LIMIT_REQUEST_LINE", "GUNICORN_LIMIT_REQUEST_FIELDS", "GUNICORN_LIMIT_REQUEST_FIELD_SIZE")


def _conf(monkeypatch, **env) -> dict:
    for name in LIMIT_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(stack.ROOT / "gunicorn.conf.py"))


def test_request_limits_come_from_the_environment_with_the_asgi_tiers_defaults(monkeypatch, settings):
    conf = _conf(monkeypatch)
    limits = (conf["limit_request_line"], conf["limit_request_fields"], conf["limit_request_field_size"])
    assert limits == (4094, 100, 8190)
    # the ASGI tier's guard enforces the same values (app/settings.py reads the same variables)
    assert limits == (settings.HTTP_LIMIT_REQUEST_LINE, settings.HTTP_LIMIT_REQUEST_FIELDS,
                      settings.HTTP_LIMIT_REQUEST_FIELD_SIZE)
    conf = _conf(monkeypatch, GUNICORN_LIMIT_REQUEST_LINE="512", GUNICORN_LIMIT_REQUEST_FIELDS="20",
                 GUNICORN_LIMIT_REQUEST_FIELD_SIZE="1024")
    assert (conf["limit_request_line"], conf["limit_request_fields"], conf["limit_request_field_size"]) == (512, 20, 1024)
    assert conf["logger_class"] is hooks.Logger


@pytest.mark.parametrize("env, message", [
    ({"GUNICORN_LIMIT_REQUEST_LINE": "0"}, "GUNICORN_LIMIT_REQUEST_LINE=0 must be at least 64"),  # 0 = unlimited
    ({"GUNICORN_LIMIT_REQUEST_LINE": "9000"}, "GUNICORN_LIMIT_REQUEST_LINE=9000 must be at most 8190"),
    ({"GUNICORN_LIMIT_REQUEST_FIELD_SIZE": "0"}, "GUNICORN_LIMIT_REQUEST_FIELD_SIZE=0 must be at least 64"),
    ({"GUNICORN_LIMIT_REQUEST_FIELDS": "many"}, "GUNICORN_LIMIT_REQUEST_FIELDS='many' is not an integer"),
])
def test_a_limit_that_would_switch_the_check_off_is_refused(monkeypatch, env, message):
    with pytest.raises(ImproperlyConfigured, match=re.escape(message)):
        _conf(monkeypatch, **env)


def _raw(url: str, data: bytes) -> tuple[int, bytes]:
    """Send raw bytes to the tier; return the status and the whole answer."""
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def _get(path: str = "/healthz", headers: dict | None = None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _many(n: int) -> dict:
    return {f"X-Extra-{i}": "1" for i in range(n)}


@pytest.mark.integration
def test_gunicorn_enforces_its_default_request_limits(start_tier):
    tier = start_tier(workers=1)
    line = len("GET  HTTP/1.1")
    assert _raw(tier.url, _get("/healthz?" + "a" * (4094 - line - 9)))[0] == 200  # a request line of 4094 bytes
    assert _raw(tier.url, _get("/healthz?" + "a" * (4095 - line - 9)))[0] == 414
    assert _raw(tier.url, _get(headers=_many(100 - 2)))[0] == 200  # Host and Connection count too
    assert _raw(tier.url, _get(headers=_many(101 - 2)))[0] == 431
    field = 8190 - len("X-Big: \r\n")  # the field size counts the header line with its CRLF
    assert _raw(tier.url, _get(headers={"X-Big": "b" * field}))[0] == 200
    assert _raw(tier.url, _get(headers={"X-Big": "b" * (field + 1)}))[0] == 431


@pytest.mark.integration
def test_gunicorn_reads_its_request_limits_from_the_environment_and_refuses_before_the_app(start_tier):
    tier = start_tier(workers=1, GUNICORN_LIMIT_REQUEST_LINE="256", GUNICORN_LIMIT_REQUEST_FIELDS="10",
                      GUNICORN_LIMIT_REQUEST_FIELD_SIZE="200")
    served = web.value(tier.scrape(), "django_http_responses_total_by_status_view_method_total", view="healthz")
    assert _raw(tier.url, _get("/healthz?" + "a" * 200))[0] == 200
    assert _raw(tier.url, _get("/healthz?" + "a" * 300))[0] == 414
    assert _raw(tier.url, _get(headers=_many(8)))[0] == 200
    assert _raw(tier.url, _get(headers=_many(9)))[0] == 431
    assert _raw(tier.url, _get(headers={"X-Big": "b" * 150}))[0] == 200
    assert _raw(tier.url, _get(headers={"X-Big": "b" * 250}))[0] == 431
    samples = tier.scrape()  # the app never saw the refused requests; the worker class counted them
    assert web.value(samples, "django_http_responses_total_by_status_view_method_total", view="healthz") == served + 3
    refused = dict(view="<unnamed view>")
    assert web.value(samples, "django_http_responses_total_by_status_view_method_total", status="414", **refused) == 1
    assert web.value(samples, "django_http_responses_total_by_status_view_method_total", status="431", **refused) == 2
    assert web.value(samples, "django_http_responses_total_by_status_view_method_total", status="414", view="healthz") == 0


@pytest.mark.integration
def test_access_log_escapes_control_characters_from_the_request(start_tier):
    tier = start_tier(workers=1)
    # gunicorn refuses C0 controls in a header but passes obs-text: NEL (0x85) is a line break to some readers
    status, _ = _raw(tier.url, _get("/healthz?next=%0d%0aFAKE", headers={"User-Agent": "ua\x85FAKE-LINE"}))
    assert status == 200
    line = stack.wait_for(lambda: [ln for ln in tier.gunicorn.log().splitlines() if "/healthz?next=" in ln], 10,
                          "the access log line")
    assert len(line) == 1
    assert re.fullmatch(r'127\.0\.0\.1 "GET /healthz\?next=%0d%0aFAKE HTTP/1\.1" 200 \d+ \d+ms "ua\\x85FAKE-LINE" rid=- xff=-',
                        line[0]), line[0]
    assert "\x85" not in tier.gunicorn.log()
