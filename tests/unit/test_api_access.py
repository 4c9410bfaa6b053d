"""API access: named hashed tokens, ownership, rotation, rate limits (429), the production default,
JSON errors for every rejection, and instrumentation that never breaks a request."""
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY

from app.api import guard, tokens, uploads
from django_celery_ops import queue_time

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[2]

PLAIN = {"alice": "alice-token", "alice-next": "alice-rotated", "bob": "bob-token"}
ENTRIES = tuple((name.removesuffix("-next"), hashlib.sha256(t.encode()).hexdigest()) for name, t in PLAIN.items())
LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
          "api": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api-test"}}


def _auth(name):
    return {"HTTP_AUTHORIZATION": f"Bearer {PLAIN[name]}"}


def _errors(stage):
    return REGISTRY.get_sample_value("django_instrumentation_errors_total", {"stage": stage}) or 0


@pytest.fixture
def tokens_on(settings):
    settings.JOBS_API_AUTH = "required"
    settings.JOBS_API_TOKENS = ENTRIES
    settings.JOBS_API_RATE = None
    return settings


def _export(client, name="alice", body=b"{}"):
    return client.post("/api/exports/", body, content_type="application/json", **(_auth(name) if name else {}))


def test_without_or_with_a_wrong_token_the_api_answers_401_naming_authorization(client, tokens_on):
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer nope"}, {"HTTP_AUTHORIZATION": "Bearer \u00e9\u00ff"},
                    {"HTTP_AUTHORIZATION": "Basic YTpi"}):
        response = client.get("/api/jobs/x/", **headers)
        assert response.status_code == 401
        assert response.json()["field"] == "Authorization" and response["WWW-Authenticate"].startswith("Bearer")


def test_a_job_is_visible_to_its_token_name_only_and_rotation_keeps_access(client, tokens_on):
    job_id = _export(client).json()["id"]
    assert client.get(f"/api/jobs/{job_id}/", **_auth("alice")).status_code == 200
    assert client.get(f"/api/jobs/{job_id}/", **_auth("alice-next")).status_code == 200
    response = client.get(f"/api/jobs/{job_id}/", **_auth("bob"))
    assert response.status_code == 404 and response.json()["rule"] == "known_job"
    assert client.get(f"/api/jobs/{job_id}/result/", **_auth("bob")).status_code == 404


def test_with_tokens_off_every_job_is_visible(client, settings):
    settings.JOBS_API_AUTH = "off"
    job_id = _export(client, name=None).json()["id"]
    assert client.get(f"/api/jobs/{job_id}/").status_code == 200


@override_settings(CACHES=LOCMEM)
def test_over_the_rate_a_token_gets_429_with_retry_after_and_other_tokens_do_not(client, tokens_on):
    tokens_on.JOBS_API_RATE = (3, 60)
    statuses = [client.get("/api/jobs/x/", **_auth("alice")).status_code for _ in range(5)]
    assert statuses == [404, 404, 404, 429, 429]
    refused = client.get("/api/jobs/x/", **_auth("alice"))
    assert refused.json()["rule"] == "rate_limit" and 1 <= int(refused["Retry-After"]) <= 60
    assert client.get("/api/jobs/x/", **_auth("bob")).status_code == 404


def test_when_the_rate_cache_is_down_the_limit_fails_open_and_is_counted(client, tokens_on):
    tokens_on.JOBS_API_RATE = (1, 60)  # the test settings point the cache at a closed port
    before = _errors("rate_limit")
    assert [client.get("/api/jobs/x/", **_auth("alice")).status_code for _ in range(3)] == [404, 404, 404]
    assert _errors("rate_limit") == before + 3


def _settings_process(**env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JOBS_"))}
    base.update(DJANGO_ENV="production", DJANGO_SECRET_KEY="x" * 40, DJANGO_ALLOWED_HOSTS="a.example", **env)
    return subprocess.run([sys.executable, "-c", "import app.settings"], env=base, cwd=ROOT, capture_output=True,
                          text=True)


def test_production_without_tokens_refuses_to_start_naming_jobs_api_tokens():
    result = _settings_process()
    assert result.returncode != 0 and "JOBS_API_TOKENS is required" in result.stderr


def test_production_starts_with_tokens_or_with_auth_off_by_name():
    assert _settings_process(JOBS_API_TOKENS=f"ci:{'a' * 64}").returncode == 0
    assert _settings_process(JOBS_API_AUTH="off").returncode == 0
    bad = _settings_process(JOBS_API_TOKENS="ci:plaintext")
    assert bad.returncode != 0 and "JOBS_API_TOKENS entry 1" in bad.stderr


def test_tokens_parse_several_names_and_match_by_hash():
    entries = tokens.parse_tokens(f" ci:{'A' * 64}, ci:{'b' * 64} ,ops:{tokens.digest('s3cret')}")
    assert [name for name, _ in entries] == ["ci", "ci", "ops"]
    assert tokens.owner_of("s3cret", entries) == "ops"
    assert tokens.owner_of("s3cret\u00e9", entries) is None
    assert tokens.parse_rate("600/m") == (600, 60) and tokens.parse_rate("0") is None
    with pytest.raises(ValueError):
        tokens.parse_rate("fast")


def test_every_rejection_names_field_and_rule(client):
    cases = [
        (client.post("/api/exports/", '{"report": []}', content_type="application/json"), 400, "string"),
        (client.post("/api/exports/", '{"report": {}}', content_type="application/json"), 400, "string"),
        (client.post("/api/exports/", "[" * 5000, content_type="application/json"), 400, "max_depth"),
        (client.post("/api/exports/", '{"a":' * 3000 + "1" + "}" * 3000, content_type="application/json"), 400,
         "max_depth"),
        (client.post("/api/exports/", json.dumps({"pad": "x" * 3_000_000}), content_type="application/json"), 413,
         "max_bytes"),
        (client.post("/api/exports/", "{", content_type="application/json"), 400, "json_object"),
        (client.get("/api/exports/"), 405, "allowed_methods"),
        (client.generic("FOO", "/healthz"), 405, "allowed_methods"),
        (client.post("/healthz"), 405, "allowed_methods"),
        (client.get("/healthz", HTTP_HOST="evil.example"), 400, "allowed_hosts"),
        (client.post("/api/imports/", b"a,b\n1,2\n", content_type="text/csv"), 415, "multipart/form-data"),
        (client.get("/api/jobs/not-a-uuid/"), 404, "known_job"),
    ]
    for response, status, rule in cases:
        assert response.status_code == status, (rule, response.content[:200])
        body = response.json()
        assert body["rule"] == rule and body["error"] and "field" in body
    allowed = client.get("/api/exports/")
    assert allowed["Allow"] == "POST" and allowed.json()["allowed"] == ["POST"]


def test_status_urls_come_from_the_public_base_url_never_the_host_header(client, settings):
    response = _export(client, name=None)
    assert response.json()["status_url"].startswith("/api/jobs/")
    settings.JOBS_PUBLIC_BASE_URL = "https://jobs.example.com"
    response = client.post("/api/exports/", "{}", content_type="application/json", HTTP_HOST="localhost:99999")
    assert response.json()["status_url"].startswith("https://jobs.example.com/api/jobs/")


def test_a_failure_inside_the_middleware_is_counted_logged_on_one_line_and_the_request_goes_on(
        client, monkeypatch, caplog):
    def broken(header, now=None):
        raise RuntimeError(f"instrumentation bug with {header}")
    monkeypatch.setattr(queue_time, "queue_seconds", broken)
    before = _errors("begin")
    with caplog.at_level(logging.WARNING, logger="django_celery_ops.errors"):
        response = client.get("/healthz", HTTP_X_REQUEST_START="t=1\nFORGED line")
    assert response.status_code == 200 and len(response["X-Request-ID"]) == 32
    assert _errors("begin") == before + 1
    [record] = [r for r in caplog.records if r.name == "django_celery_ops.errors"]
    assert "stage begin: RuntimeError" in record.getMessage() and "\n" not in record.getMessage()


def test_the_openapi_document_is_served_and_covers_every_api_url(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = json.loads(b"".join(response.streaming_content))
    assert doc["openapi"] == "3.1.0"
    assert {"/api/imports/", "/api/exports/", "/api/jobs/{job_id}/", "/api/jobs/{job_id}/result/"} <= set(doc["paths"])


def test_forwarded_headers_count_only_from_trusted_proxies(settings):
    settings.DJANGO_CELERY_OPS = {**settings.DJANGO_CELERY_OPS, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    assert guard.trusted("10.1.2.3") and not guard.trusted("127.0.0.1") and not guard.trusted("junk")
    environ = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_PROTO": "https", "HTTP_X_FORWARDED_FOR": "1.2.3.4",
               "PATH_INFO": "/healthz"}
    guard._wsgi_check(environ)
    assert "HTTP_X_FORWARDED_PROTO" not in environ and "HTTP_X_FORWARDED_FOR" not in environ
    environ = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_PROTO": "https", "PATH_INFO": "/healthz"}
    guard._wsgi_check(environ)
    assert environ["HTTP_X_FORWARDED_PROTO"] == "https"


def test_stale_spooled_uploads_are_removed_and_fresh_ones_kept(settings, tmp_path):
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    old, fresh = tmp_path / "tmpold.upload.csv", tmp_path / "tmpnew.upload.csv"
    old.write_bytes(b"x" * 10)
    fresh.write_bytes(b"y")
    os.utime(old, (1, 1))
    assert uploads.clean_spool() == 1
    assert not old.exists() and fresh.exists() and uploads.spool_bytes() == 1


def _run_asgi(app, scope, chunks):
    """Drive an ASGI app with body chunks; return (messages sent, what the inner app saw)."""
    import asyncio

    incoming = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent = []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_the_asgi_guard_buffers_a_chunked_body_within_the_limit_and_refuses_one_past_it(settings, tmp_path):
    settings.JOBS_MAX_UPLOAD_BYTES, settings.FILE_UPLOAD_TEMP_DIR = 300_000, str(tmp_path)
    seen = {}

    async def inner(scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        seen.update(headers=dict(scope["headers"]), body=body)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = guard.asgi(inner)
    scope = {"type": "http", "method": "POST", "path": "/api/imports/", "raw_path": b"/api/imports/",
             "query_string": b"", "client": ("127.0.0.1", 5),
             "headers": [(b"host", b"x"), (b"transfer-encoding", b"chunked"), (b"x-forwarded-proto", b"https")]}
    chunks = [bytes([i]) * 50_000 for i in range(5)]  # 250 kB in 5 messages, replayed in 64 KiB pieces
    sent = _run_asgi(app, scope, chunks)
    assert sent[0]["status"] == 202 and seen["body"] == b"".join(chunks)
    assert seen["headers"][b"content-length"] == b"250000" and b"transfer-encoding" not in seen["headers"]
    assert b"x-forwarded-proto" not in seen["headers"]  # not from a trusted proxy
    refused = _run_asgi(app, scope, chunks * 2)
    assert refused[0]["status"] == 413 and json.loads(refused[1]["body"])["rule"] == "max_bytes"
    assert list(tmp_path.iterdir()) == []
