"""The request families of docs/metrics.md are written by RequestMiddleware (one pass), with
django-prometheus' names, labels and buckets, and without the package; the families of
django-prometheus that nothing reads are not exported."""
import pytest
from django.test import Client
from prometheus_client import REGISTRY

from django_celery_ops import metrics

DROPPED = (
    "django_http_requests_before_middlewares_total", "django_http_responses_before_middlewares_total",
    "django_http_requests_latency_including_middlewares_seconds_count",
    "django_http_requests_unknown_latency_including_middlewares_total", "django_http_requests_unknown_latency_total",
    "django_http_ajax_requests_total", "django_http_requests_total_by_method_total",
    "django_http_requests_total_by_transport_total", "django_http_responses_total_by_status_total",
    "django_http_responses_total_by_charset_total",
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


def test_an_exception_is_counted_by_type_and_by_view_and_answered_500(client):
    before = (_value("django_http_exceptions_total_by_type_total", type="DrillError"),
              _value("django_http_exceptions_total_by_view_total", view="drills:error"),
              _value("django_http_responses_total_by_status_view_method_total", status="500", view="drills:error",
                     method="GET"))
    assert client.get("/drills/error/").status_code == 500
    after = (_value("django_http_exceptions_total_by_type_total", type="DrillError"),
             _value("django_http_exceptions_total_by_view_total", view="drills:error"),
             _value("django_http_responses_total_by_status_view_method_total", status="500", view="drills:error",
                    method="GET"))
    assert after == tuple(b + 1 for b in before)


def test_an_unresolved_url_is_counted_under_the_unnamed_view(client):
    labels = {"status": "404", "view": "<unnamed view>", "method": "GET"}
    before = _value("django_http_responses_total_by_status_view_method_total", **labels)
    assert client.get("/no-such-page/").status_code == 404
    assert _value("django_http_responses_total_by_status_view_method_total", **labels) == before + 1


def test_request_and_response_body_sizes_land_in_the_powers_of_two_buckets(client):
    def sizes(kind):
        return (_value(f"django_http_{kind}_body_total_bytes_count"), _value(f"django_http_{kind}_body_total_bytes_sum"),
                _value(f"django_http_{kind}_body_total_bytes_bucket", le="0.0"))
    req, resp = sizes("requests"), sizes("responses")
    response = client.get("/healthz")
    body = len(response.content)
    assert sizes("requests") == (req[0] + 1, req[1], req[2] + 1)  # a GET: Content-Length 0
    assert sizes("responses")[:2] == (resp[0] + 1, resp[1] + body)
    req = sizes("requests")
    client.post("/no-such-page/", data=b"x" * 300, content_type="application/octet-stream")
    assert sizes("requests")[:2] == (req[0] + 1, req[1] + 300)
    # django-prometheus' PowersOf(2, 30): 0, 1, 2, 4, ... 2**29, then +Inf
    assert metrics.BODY_BYTES_BUCKETS[:4] == (0, 1, 2, 4) and metrics.BODY_BYTES_BUCKETS[-1] == 2 ** 29
    assert _value("django_http_requests_body_total_bytes_bucket", le="512.0") >= 1


def test_a_template_response_is_counted_by_template_name(rf):
    from django.template.response import TemplateResponse

    from django_celery_ops.middleware import RequestMiddleware

    middleware = RequestMiddleware(lambda request: None)
    before = _value("django_http_responses_total_by_templatename_total", templatename="admin/login.html")
    middleware.process_template_response(rf.get("/"), TemplateResponse(rf.get("/"), "admin/login.html"))
    assert _value("django_http_responses_total_by_templatename_total", templatename="admin/login.html") == before + 1


def test_a_streaming_response_is_counted_and_its_body_is_not_read(rf):
    from django.http import StreamingHttpResponse

    from django_celery_ops.middleware import RequestMiddleware

    def never(request):
        def body():
            raise AssertionError("the middleware read the streamed body")
            yield b""
        return StreamingHttpResponse(body())

    before = _value("django_http_responses_streaming_total"), _value("django_http_responses_body_total_bytes_count")
    RequestMiddleware(never)(rf.get("/stream"))
    assert (_value("django_http_responses_streaming_total"),
            _value("django_http_responses_body_total_bytes_count")) == (before[0] + 1, before[1])


def test_families_outside_the_contract_are_not_exported(client):
    client.get("/healthz")
    names = {s.name for family in REGISTRY.collect() for s in family.samples}
    assert not names & set(DROPPED)
    exported = {family.name for family in REGISTRY.collect()}
    assert set(metrics.HTTP_FAMILIES) <= exported, set(metrics.HTTP_FAMILIES) - exported


def test_django_prometheus_is_not_imported():
    import sys

    assert not [m for m in sys.modules if m.split(".")[0] == "django_prometheus"]
