"""RequestMiddleware on a project that is not the demo: the contract families, by view, with the settings dict."""
import logging

import pytest
from django.test import Client
from prometheus_client import REGISTRY


def _v(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


def test_a_request_is_counted_by_view_status_and_method_and_timed(client):
    view = {"view": "ok", "method": "GET"}
    before = (_v("django_http_responses_total_by_status_view_method_total", status="200", **view),
              _v("django_http_requests_total_by_view_transport_method_total", transport="http", **view),
              _v("django_http_requests_latency_seconds_by_view_method_count", **view),
              _v("django_http_responses_body_total_bytes_sum"))
    response = client.get("/ok/")
    assert response.status_code == 200 and len(response["X-Request-ID"]) == 32
    assert (_v("django_http_responses_total_by_status_view_method_total", status="200", **view),
            _v("django_http_requests_total_by_view_transport_method_total", transport="http", **view),
            _v("django_http_requests_latency_seconds_by_view_method_count", **view),
            _v("django_http_responses_body_total_bytes_sum")) == (before[0] + 1, before[1] + 1, before[2] + 1,
                                                                   before[3] + 2)


def test_the_latency_buckets_hold_the_configured_slow_threshold(client):
    client.get("/ok/")
    les = {s.labels["le"] for m in REGISTRY.collect() for s in m.samples
           if s.name == "django_http_requests_latency_seconds_by_view_method_bucket"}
    assert "0.5" in les and "1.0" in les  # tests/library/settings.py: SLOW_REQUEST_SECONDS 0.5


def test_an_exception_is_counted_by_type_and_view(client):
    before = _v("django_http_exceptions_total_by_type_total", type="Boom"), _v(
        "django_http_exceptions_total_by_view_total", view="boom")
    assert client.get("/boom/").status_code == 500
    assert (_v("django_http_exceptions_total_by_type_total", type="Boom"),
            _v("django_http_exceptions_total_by_view_total", view="boom")) == (before[0] + 1, before[1] + 1)


def test_a_template_response_is_counted_by_template_name(client):
    before = _v("django_http_responses_total_by_templatename_total", templatename="page.html")
    assert client.get("/page/").content == b"<p>1</p>"
    assert _v("django_http_responses_total_by_templatename_total", templatename="page.html") == before + 1


def test_the_slow_threshold_comes_from_the_settings_dict(client, settings, caplog):
    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 1e-9}
    before = _v("django_http_slow_requests_total", view="ok", method="GET")
    with caplog.at_level(logging.WARNING, logger="django_celery_ops.slow"):
        Client().get("/ok/")
    assert _v("django_http_slow_requests_total", view="ok", method="GET") == before + 1
    assert any("view=ok method=GET status=200" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("values", [[0, 0, 1, 2, 3, 1000, 2 ** 29, 2 ** 40], [0.001, 0.5, 0.75, 1.0, 1e9]])
def test_the_fast_recorders_write_what_the_public_api_writes(values):
    from prometheus_client import CollectorRegistry, Counter, Histogram

    from django_celery_ops import metrics
    from django_celery_ops.middleware import _inc_of, _observe_of

    registry = CollectorRegistry()
    buckets = metrics.BODY_BYTES_BUCKETS if values[0] == 0 else (0.5, 1.0, 2.5)
    public, fast = (Histogram(f"h_{n}", "h", ["v"], buckets=buckets, registry=registry) for n in ("a", "b"))
    ca, cb = (Counter(f"c_{n}", "c", ["v"], registry=registry) for n in ("a", "b"))
    observe, inc = _observe_of(fast.labels("x")), _inc_of(cb.labels("x"))
    for value in values:
        public.labels("x").observe(value)
        observe(value)
        ca.labels("x").inc()
        inc(1)

    def samples(prefix):
        return sorted((s.name[len(prefix):], tuple(sorted(s.labels.items())), s.value)
                      for m in registry.collect() for s in m.samples if s.name.startswith(prefix)
                      and not s.name.endswith("_created"))
    assert samples("h_a") == samples("h_b")
    assert samples("c_a") == samples("c_b")


def test_the_slow_log_line_names_the_profile_the_profiling_middleware_wrote(settings, caplog, rf):
    from django.http import HttpResponse

    from django_celery_ops.middleware import RequestMiddleware

    settings.DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 1e-9}

    def view(request):
        request.django_celery_ops_profile = "/var/profiles/p-1.html"
        return HttpResponse("ok")

    with caplog.at_level(logging.WARNING, logger="django_celery_ops.slow"):
        RequestMiddleware(view)(rf.get("/ok/"))
        RequestMiddleware(lambda request: HttpResponse("ok"))(rf.get("/ok/"))
    profiled, plain = [r for r in caplog.records if r.name == "django_celery_ops.slow"]
    assert profiled.getMessage().endswith(" profile=/var/profiles/p-1.html")
    assert profiled.slow_request["profile"] == "/var/profiles/p-1.html"
    assert "profile" not in plain.slow_request and "profile=" not in plain.getMessage()


def test_an_async_chain_runs_process_view_in_the_event_loop_and_counts():
    from asgiref.sync import async_to_sync, iscoroutinefunction
    from django.core.handlers.asgi import ASGIHandler
    from django.test import AsyncClient

    from django_celery_ops.middleware import RequestMiddleware

    handler = ASGIHandler()  # loads the middleware chain for the async mode
    ours = [m for m in handler._view_middleware if isinstance(getattr(m, "__self__", None), RequestMiddleware)]
    assert len(ours) == 1 and iscoroutinefunction(ours[0])  # not wrapped in sync_to_async (a thread hop)
    view = {"view": "ok", "method": "GET"}
    before = (_v("django_http_requests_total_by_view_transport_method_total", transport="http", **view),
              _v("django_http_responses_total_by_status_view_method_total", status="200", **view))
    response = async_to_sync(AsyncClient().get)("/ok/")
    assert response.status_code == 200 and len(response["X-Request-ID"]) == 32
    assert (_v("django_http_requests_total_by_view_transport_method_total", transport="http", **view),
            _v("django_http_responses_total_by_status_view_method_total", status="200", **view)) == \
        (before[0] + 1, before[1] + 1)
    rendered = _v("django_http_responses_total_by_templatename_total", templatename="page.html")
    assert async_to_sync(AsyncClient().get)("/page/").content == b"<p>1</p>"  # process_template_response, async
    assert _v("django_http_responses_total_by_templatename_total", templatename="page.html") == rendered + 1
