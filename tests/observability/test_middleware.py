"""Slow requests are counted and logged with view, method, status, duration and request id."""
import logging

import pytest
from django.test import Client
from prometheus_client import REGISTRY


def _slow(view):
    return REGISTRY.get_sample_value("django_http_slow_requests_total", {"view": view, "method": "GET"}) or 0


@pytest.fixture
def drills(settings):
    settings.DRILLS_ENABLED = True
    settings.DJANGO_CELERY_OPS = {**settings.DJANGO_CELERY_OPS, "SLOW_REQUEST_SECONDS": 0.05}
    return Client()


def test_a_request_over_the_threshold_is_counted_and_logged(drills, caplog):
    before = _slow("drills:slow-view")
    with caplog.at_level(logging.WARNING, logger="django_celery_ops.slow"):
        response = drills.get("/drills/slow-view/?seconds=0.1", HTTP_X_REQUEST_ID="rid-123")
    assert response.status_code == 200
    assert response["X-Request-ID"] == "rid-123"
    assert _slow("drills:slow-view") == before + 1
    [record] = [r for r in caplog.records if r.name == "django_celery_ops.slow"]
    assert record.slow_request["view"] == "drills:slow-view"
    assert record.slow_request["status"] == 200
    assert record.slow_request["duration_seconds"] >= 0.1
    assert "view=drills:slow-view method=GET status=200" in record.getMessage()
    assert "request_id=rid-123" in record.getMessage()


def test_a_fast_request_is_neither_counted_nor_logged(drills, caplog):
    before = _slow("healthz")
    with caplog.at_level(logging.WARNING, logger="django_celery_ops.slow"):
        response = drills.get("/healthz")
    assert _slow("healthz") == before
    assert not [r for r in caplog.records if r.name == "django_celery_ops.slow"]
    assert len(response["X-Request-ID"]) == 32  # made up when the proxy sent none


def test_an_unsafe_request_id_is_replaced(drills):
    response = drills.get("/healthz", HTTP_X_REQUEST_ID='bad id" injected=1')
    assert response["X-Request-ID"] != 'bad id" injected=1'


def test_queue_time_is_observed_only_for_a_valid_header(drills):
    def count():
        return REGISTRY.get_sample_value("django_http_request_queue_seconds_count") or 0
    before = count()
    drills.get("/healthz", HTTP_X_REQUEST_START="t=garbage")
    assert count() == before
    import time
    drills.get("/healthz", HTTP_X_REQUEST_START=f"t={time.time() - 0.2:.3f}")
    assert count() == before + 1


def test_latency_buckets_include_the_slow_threshold():
    from django_celery_ops import conf
    assert conf.get("SLOW_REQUEST_SECONDS") in conf.get("LATENCY_BUCKETS")


def test_a_unicode_digit_in_x_request_start_neither_breaks_the_request_nor_counts(drills):
    def count():
        return REGISTRY.get_sample_value("django_http_request_queue_seconds_count") or 0

    def errors():
        return REGISTRY.get_sample_value("django_instrumentation_errors_total", {"stage": "begin"}) or 0
    before, errors_before = count(), errors()
    for path in ("/healthz", "/api/jobs/x/"):
        response = drills.get(path, HTTP_X_REQUEST_START="t=²")
        assert response.status_code in (200, 404)
    assert count() == before and errors() == errors_before
