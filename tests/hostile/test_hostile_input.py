"""Every finding of issue 22 against both real tiers: a clear 4xx naming the field and the rule,
counted in the response metrics, no 5xx counted, and nothing kept from the rejected input."""
from __future__ import annotations

import pytest

from tests.support import web
from tests.support.hostile import bearer, request
from tests.support.hostile_cases import ALICE, CASES, CSV, JSON, RESPONSES, chunked_upload

pytestmark = pytest.mark.integration


def _status_total(samples: dict, status: int) -> float:
    return web.value(samples, RESPONSES, status=str(status))


def _server_errors(samples: dict) -> float:
    return sum(v for (name, labels), v in samples.items() if name == RESPONSES and dict(labels)["status"][0] == "5")


@pytest.mark.parametrize("case, data, status, rules", CASES, ids=[c[0] for c in CASES])
def test_hostile_input_is_a_counted_4xx_naming_the_rule_and_keeps_nothing(hostile, case, data, status, rules):
    _sent_and_refused(hostile, data, status, rules)


LONG_HEADS = [("64 KB header", request("GET", "/healthz", {"X-Big": "a" * 65536}), 431),
              ("20 KB request line", request("GET", "/healthz?" + "q" * 20000), 414)]


@pytest.mark.parametrize("case, data, status", LONG_HEADS, ids=[c[0] for c in LONG_HEADS])
@pytest.mark.parametrize("pieces", [1, 4])
def test_a_long_head_gets_the_same_answer_however_tcp_splits_it(hostile, case, data, status, pieces):
    """One write or several: h11 (ASGI tier) refuses an unfinished head past 16 KB by itself, so the
    answer must not depend on whether the head arrived whole."""
    _sent_and_refused(hostile, data, status, {"max_bytes", "limit_request_headers", "limit_request_line"}, pieces)


def _sent_and_refused(hostile, data: bytes, status: int, rules: set, pieces: int = 1) -> None:
    before, kept_before = hostile.tier.scrape(), hostile.kept_bytes()
    answer = hostile.send(data, pieces=pieces)
    assert answer.status == status, (answer.status, answer.body[:300])
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
    answer = hostile.send(chunked_upload(CSV))
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
