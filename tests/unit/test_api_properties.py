"""Property tests: header parsing, body limits, multipart and CSV validation never raise anything
but their own rejection, whatever the input."""
import io
import math

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings, strategies as st

from app.api import guard, tokens
from app.jobs import csvfiles
from app.jobs.errors import InvalidUpload
from django_celery_ops import middleware, queue_time

pytestmark = pytest.mark.django_db(transaction=True)
BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

header_text = st.text(alphabet=st.characters(codec="latin-1"), max_size=40) | st.from_regex(
    r"\A\s*[tT]?=?[0-9²³¹٣.]{0,20}\s*\Z")


@BOUNDED
@given(header_text)
def test_request_start_parsing_never_raises_and_yields_a_finite_time_or_none(header):
    value = queue_time.parse_request_start(header)
    assert value is None or (math.isfinite(value) and value >= 0)
    waited = queue_time.queue_seconds(header, now=1.7e9)
    assert waited is None or 0 <= waited <= queue_time.MAX_QUEUE_SECONDS


@BOUNDED
@given(st.text(max_size=200))
def test_an_accepted_request_id_is_safe_to_log(rid):
    if middleware._REQUEST_ID.match(rid):
        assert not any(c in rid for c in ' "=\\\n\r\t') and len(rid) <= 128


@BOUNDED
@given(header_text, st.text(max_size=100))
def test_every_x_request_start_and_request_id_is_served(start, rid):
    response = Client().get("/healthz", HTTP_X_REQUEST_START=start, HTTP_X_REQUEST_ID=rid.encode("utf-8").decode("latin-1"))
    assert response.status_code == 200
    assert middleware._REQUEST_ID.match(response["X-Request-ID"])


@BOUNDED
@given(st.lists(st.text(max_size=12), max_size=3), st.booleans())
def test_content_length_is_a_number_or_a_named_refusal(values, chunked):
    try:
        length = guard.content_length(values, chunked)
    except guard.Refusal as refusal:
        assert refusal.status == 400
    else:
        assert length is None or length >= 0


@BOUNDED
@given(st.text(max_size=60))
def test_token_lookup_never_raises_for_any_header(given_token):
    entries = tokens.parse_tokens(f"a:{tokens.digest('x')}")
    assert tokens.owner_of(given_token, entries) in (None, "a")


@BOUNDED
@given(st.binary(max_size=2000), st.sampled_from(["hostileboundary", "b", ""]))
def test_any_multipart_body_is_a_4xx_or_202_never_a_5xx(body, boundary):
    response = Client().generic("POST", "/api/imports/", body,
                                content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code in (202, 400, 413, 415), response.content[:200]
    assert {"error", "rule"} <= set(response.json())


@BOUNDED
@given(st.lists(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=8), min_size=1, max_size=6),
                max_size=8), st.binary(max_size=40))
def test_csv_validation_answers_a_row_count_or_invalid_upload(rows, tail):
    data = "\n".join(",".join(row) for row in rows).encode() + tail
    try:
        count = csvfiles.validate(io.BytesIO(data), 1000, max_lines=50, max_columns=5)
    except InvalidUpload as exc:
        assert str(exc)
    else:
        assert count >= 1
