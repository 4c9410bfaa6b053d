"""Every finding of issue 22 against both real tiers: a clear 4xx naming the field and the rule,
counted in the response metrics, no 5xx counted, and nothing kept from the rejected input."""
from __future__ import annotations

import pytest

from tests.hostile.conftest import MAX_UPLOAD, bearer, multipart, request
from tests.support import web

pytestmark = pytest.mark.integration

RESPONSES = "django_http_responses_total_by_status_view_method_total"
ALICE = bearer("alice")
JSON = {**ALICE, "Content-Type": "application/json"}
CSV = b"city,temp\nOslo,3\nRome,18\n"


def _upload(parts, **headers):
    body, content_type = multipart(parts)
    return request("POST", "/api/imports/", {**ALICE, "Content-Type": content_type, **headers}, body)


def _chunked(body: bytes, size: int = 8192) -> bytes:
    return b"".join(b"%x\r\n" % len(body[i:i + size]) + body[i:i + size] + b"\r\n"
                    for i in range(0, len(body), size)) + b"0\r\n\r\n"


def _chunked_upload(content: bytes) -> bytes:
    body, content_type = multipart([("file", "big.csv", content)])
    return request("POST", "/api/imports/", {**ALICE, "Content-Type": content_type, "Transfer-Encoding": "chunked"},
                   _chunked(body), length=False)


def _truncated() -> bytes:
    body, content_type = multipart([("file", "cut.csv", CSV * 50)])
    return request("POST", "/api/imports/", {**ALICE, "Content-Type": content_type}, body[:-40])


# (case, request bytes, status, accepted rules): one row per finding of issue 22.
CASES = [
    # 500s for client input
    ("report is a list", request("POST", "/api/exports/", JSON, b'{"report": []}'), 400, {"string"}),
    ("report is an object", request("POST", "/api/exports/", JSON, b'{"report": {}}'), 400, {"string"}),
    ("deeply nested JSON object", request("POST", "/api/exports/", JSON, b'{"a":' * 5000 + b"1" + b"}" * 5000),
     400, {"max_depth"}),
    ("deeply nested JSON list", request("POST", "/api/exports/", JSON, b"[" * 30000), 400, {"max_depth"}),
    ("non-ASCII Authorization", request("GET", "/api/jobs/x/", {"Authorization": b"Bearer \xc3\xa9\xff\xfe"}),
     401, {"known_token"}),
    ("no token", request("GET", "/api/jobs/x/"), 401, {"bearer_token"}),
    ("wrong scheme", request("GET", "/api/jobs/x/", {"Authorization": "Basic YTpi"}), 401, {"bearer_token"}),
    # rejected uploads, sizes
    ("Content-Length above the upload limit, body never sent",
     request("POST", "/api/imports/", {**ALICE, "Content-Type": "multipart/form-data; boundary=x",
                                       "Content-Length": str(50 * 1024 * 1024)}, b"", length=False), 413, {"max_bytes"}),
    ("3 MB export body, never sent",
     request("POST", "/api/exports/", {**JSON, "Content-Length": "3000000"}, b"", length=False), 413, {"max_bytes"}),
    ("chunked upload above the limit", _chunked_upload(b"a,b\n" + b"1,2\n" * (MAX_UPLOAD // 3)), 413, {"max_bytes"}),
    ("file above the limit inside a small envelope", _upload([("file", "big.csv", b"a,b\n" + b"1,2\n" * (MAX_UPLOAD // 4))]),
     413, {"max_bytes"}),
    # one HTTP strictness on both tiers
    ("64 KB header", request("GET", "/healthz", {"X-Big": "a" * 65536}), 431, {"max_bytes", "limit_request_headers"}),
    ("1,000 headers", request("GET", "/healthz", [(f"X-H{i}", "v") for i in range(1000)]), 431,
     {"max_count", "limit_request_headers"}),
    ("Content-Length with Transfer-Encoding",
     request("POST", "/api/exports/", {**JSON, "Transfer-Encoding": "chunked"}, b"2\r\n{}\r\n0\r\n\r\n"), 400,
     {"content_length_with_transfer_encoding", "invalid_header"}),
    ("bare-LF line endings", b"GET /healthz HTTP/1.1\nHost: 127.0.0.1\nConnection: close\n\n", 400,
     {"crlf_line_endings", "invalid_request_line"}),
    ("header name with a space", request("GET", "/healthz", [("Bad Header", "x")]), 400,
     {"invalid_http_request", "invalid_header_name"}),
    ("request line over the limit", request("GET", "/healthz?" + "q" * 5000), 414, {"max_bytes", "limit_request_line"}),
    # errors that did not say what is wrong
    ("disallowed Host", request("GET", "/healthz", host="evil.example"), 400, {"allowed_hosts"}),
    ("GET on the upload URL", request("GET", "/api/imports/", ALICE), 405, {"allowed_methods"}),
    ("unknown method on /healthz", request("FOO", "/healthz"), 405, {"allowed_methods"}),
    ("DELETE on /healthz", request("DELETE", "/healthz"), 405, {"allowed_methods"}),
    ("upload that is not multipart", request("POST", "/api/imports/", {**ALICE, "Content-Type": "text/csv"}, CSV),
     415, {"multipart/form-data"}),
    ("truncated multipart body", _truncated(), 400, {"complete_body"}),
    ("missing file field", _upload([("other", None, b"x")]), 400, {"required"}),
    ("filename '..'", _upload([("file", "..", CSV)]), 400, {"required"}),
    ("broken multipart boundary",
     request("POST", "/api/imports/", {**ALICE, "Content-Type": "multipart/form-data; boundary="}, b"--\r\n"), 400,
     {"multipart"}),
    ("job id that is not a UUID", request("GET", "/api/jobs/not-a-uuid/", ALICE), 404, {"known_job"}),
    # CSV content (helper A's rules, reached through the API)
    ("NUL byte after the first 8 KB", _upload([("file", "nul.csv", b"a,b\n" + b"1,2\n" * 3000 + b"1,\x002\n")]),
     400, {"csv"}),
    ("header followed by blank lines only", _upload([("file", "blank.csv", b"a,b\n" + b"\n" * 30000)]), 400, {"csv"}),
]


def _status_total(samples: dict, status: int) -> float:
    return web.value(samples, RESPONSES, status=str(status))


def _server_errors(samples: dict) -> float:
    return sum(v for (name, labels), v in samples.items() if name == RESPONSES and dict(labels)["status"][0] == "5")


@pytest.mark.parametrize("case, data, status, rules", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_a_counted_4xx_naming_the_rule_and_keeps_nothing(hostile, case, data, status, rules):
    before, kept_before = hostile.tier.scrape(), hostile.kept_bytes()
    answer = hostile.send(data)
    assert answer.status == status, (case, answer.status, answer.body[:300])
    body = answer.json()
    assert body["error"] and body["rule"] in rules and "field" in body, body
    after = hostile.tier.scrape()
    assert _status_total(after, status) == _status_total(before, status) + 1
    assert _server_errors(after) == 0
    kept = hostile.kept_bytes()
    assert kept["spool"] == 0 and kept["uploads"] == kept_before["uploads"], kept


def test_a_unicode_digit_in_x_request_start_is_ignored_on_every_url(hostile):
    before = hostile.tier.scrape()
    for path, headers in (("/healthz", {}), ("/api/jobs/x/", ALICE)):
        answer = hostile.send(request("GET", path, {**headers, "X-Request-Start": "t=²".encode()}))
        assert answer.status in (200, 404)
    after = hostile.tier.scrape()
    assert web.value(after, "django_http_request_queue_seconds_count") == web.value(before, "django_http_request_queue_seconds_count")
    assert web.value(after, "django_instrumentation_errors_total", stage="begin") == 0
    assert _server_errors(after) == 0


def test_a_script_name_header_from_a_client_is_ignored(hostile):
    answer = hostile.send(request("GET", "/healthz", {"SCRIPT_NAME": "/elsewhere"}))
    assert answer.status == 200 and answer.json() == {"status": "ok"}
    assert _server_errors(hostile.tier.scrape()) == 0


def test_the_host_port_is_not_echoed_into_status_url(hostile):
    answer = hostile.send(request("POST", "/api/exports/", JSON, b"{}", host="127.0.0.1:99999"))
    assert answer.status == 202
    assert answer.json()["status_url"] == f"/api/jobs/{answer.json()['id']}/"


def test_a_chunked_upload_within_the_limit_is_accepted_on_both_tiers(hostile):
    answer = hostile.send(_chunked_upload(CSV))
    assert answer.status == 202, answer.body
    assert hostile.kept_bytes()["spool"] == 0


def test_another_tokens_job_is_404_and_a_rotated_token_keeps_access(hostile):
    created = hostile.send(request("POST", "/api/exports/", JSON, b"{}")).json()
    path = f"/api/jobs/{created['id']}/"
    assert hostile.send(request("GET", path, bearer("alice"))).status == 200
    assert hostile.send(request("GET", path, bearer("alice-next"))).status == 200  # same name, second hash
    other = hostile.send(request("GET", path, bearer("bob")))
    assert other.status == 404 and other.json()["rule"] == "known_job"
    assert hostile.send(request("GET", path + "result/", bearer("bob"))).status == 404


def test_the_rate_limit_cache_being_down_fails_open_and_is_counted(hostile):
    before = web.value(hostile.tier.scrape(), "django_instrumentation_errors_total", stage="rate_limit")
    assert hostile.send(request("GET", "/healthz")).status == 200
    assert hostile.send(request("GET", "/api/jobs/x/", ALICE)).status == 404  # not 5xx, not 429
    after = web.value(hostile.tier.scrape(), "django_instrumentation_errors_total", stage="rate_limit")
    assert after == before + 1
