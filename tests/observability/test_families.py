"""The request families of docs/metrics.md are written by RequestMiddleware (one pass); the
django-prometheus request families outside the contract are not exported."""
import pytest
from django.test import Client
from prometheus_client import REGISTRY

from django_celery_ops.middleware import CONTRACT_FAMILIES, ContractMetrics

DROPPED = (
    "django_http_requests_before_middlewares_total", "django_http_responses_before_middlewares_total",
    "django_http_requests_latency_including_middlewares_seconds_count", "django_http_requests_total_by_method_total",
    "django_http_requests_total_by_transport_total", "django_http_requests_body_total_bytes_count",
    "django_http_responses_total_by_status_total", "django_http_responses_body_total_bytes_count",
    "django_http_responses_total_by_charset_total", "django_http_exceptions_total_by_view_total",
)


def _value(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


@pytest.fixture
def client(settings):
    settings.DRILLS_ENABLED = True
    return Client(raise_request_exception=False)


def test_a_request_updates_every_contract_family_with_its_labels(client):
    view = {"view": "healthz", "method": "GET"}
    before = (_value("django_http_responses_total_by_status_view_method_total", status="200", **view),
              _value("django_http_requests_total_by_view_transport_method_total", transport="http", **view),
              _value("django_http_requests_latency_seconds_by_view_method_bucket", le="1.0", **view),
              _value("django_http_requests_latency_seconds_by_view_method_count", **view))
    assert client.get("/healthz").status_code == 200
    after = (_value("django_http_responses_total_by_status_view_method_total", status="200", **view),
             _value("django_http_requests_total_by_view_transport_method_total", transport="http", **view),
             _value("django_http_requests_latency_seconds_by_view_method_bucket", le="1.0", **view),
             _value("django_http_requests_latency_seconds_by_view_method_count", **view))
    assert after == tuple(b + 1 for b in before)


def test_an_exception_is_counted_by_type_and_answered_500(client):
    before = _value("django_http_exceptions_total_by_type_total", type="DrillError")
    responses = _value("django_http_responses_total_by_status_view_method_total", status="500", view="drills:error",
                       method="GET")
    assert client.get("/drills/error/").status_code == 500
    assert _value("django_http_exceptions_total_by_type_total", type="DrillError") == before + 1
    assert _value("django_http_responses_total_by_status_view_method_total", status="500", view="drills:error",
                  method="GET") == responses + 1


def test_an_unresolved_url_is_counted_under_the_unnamed_view(client):
    labels = {"status": "404", "view": "<unnamed view>", "method": "GET"}
    before = _value("django_http_responses_total_by_status_view_method_total", **labels)
    assert client.get("/no-such-page/").status_code == 404
    assert _value("django_http_responses_total_by_status_view_method_total", **labels) == before + 1


def test_families_outside_the_contract_are_not_exported(client):
    m = ContractMetrics.get_instance()
    # every call django-prometheus' own middlewares make on a dropped family: accepted, never exported
    m.requests_by_method.labels(method="GET").inc()
    m.requests_body_bytes.observe(512)
    m.responses_by_status.labels("200").inc()
    m.exceptions_by_view.labels("healthz").inc(2)
    client.get("/healthz")
    names = {s.name for family in REGISTRY.collect() for s in family.samples}
    assert not names & set(DROPPED)
    assert not {n for n in names if n.startswith(("django_http_requests_total_by_method", "django_http_requests_body",
                                                   "django_http_responses_total_by_status_total"))}
    # ... while each contract family is a real metric that the request wrote
    exported = {family.name for family in REGISTRY.collect()}
    assert CONTRACT_FAMILIES <= exported, CONTRACT_FAMILIES - exported
    assert _value("django_http_requests_total_by_view_transport_method_total", view="healthz", transport="http",
                  method="GET") >= 1
