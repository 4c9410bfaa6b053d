"""Per-request instrumentation in one pass: the django-prometheus families of docs/metrics.md,
request id, requests in flight, queue time, slow requests and the timeout evidence.

Put it first in MIDDLEWARE so that it times everything Django does. It replaces
django-prometheus' PrometheusBeforeMiddleware/PrometheusAfterMiddleware: same family names,
labels and label values, written by `ContractMetrics` (django-prometheus' `metrics_cls`
extension point), which registers only the families docs/metrics.md lists. Per request:
one perf_counter pair, labelled children cached in plain dicts (no `.labels()` lock), and six
multiprocess writes (in-flight +1/-1, requests by view, responses by status, latency sum and
bucket) instead of django-prometheus' ~18 plus ours.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import time
import traceback

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django_prometheus.middleware import Metrics
from prometheus_client import Counter

from . import evidence, logsafe, metrics, queue_time

log = logging.getLogger("django_celery_ops.slow")
_errors_log = logging.getLogger("django_celery_ops.errors")

# A failure inside the instrumentation (or the ASGI guard, or the rate limiter's cache) is
# counted here and logged; the request goes on. DjangoInstrumentationErrors alerts on it.
INSTRUMENTATION_STAGES = ("begin", "end", "guard", "rate_limit")
instrumentation_errors = Counter(
    "django_instrumentation_errors", "Failures inside the request instrumentation, by stage; never raised into the request.",
    ["stage"])
for _stage in INSTRUMENTATION_STAGES:
    instrumentation_errors.labels(_stage)


def instrumentation_failed(stage: str) -> None:
    """Count and log the exception being handled; call it from an except block."""
    try:
        instrumentation_errors.labels(stage).inc()
        exc = sys.exc_info()[1]
        tb = traceback.extract_tb(exc.__traceback__)[-1:] if exc is not None else []
        where = f"{tb[0].filename}:{tb[0].lineno}" if tb else "?"
        # One line, escaped: the exception text may carry request bytes (a header value).
        _errors_log.warning("instrumentation failed at stage %s: %s: %s at %s", stage, type(exc).__name__,
                            logsafe.escape(str(exc))[:300], where)
    except Exception:  # counting must never be the thing that breaks the request
        pass

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # goes into logs: no spaces, quotes or newlines
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})
UNRESOLVED = "<unnamed view>"  # django-prometheus' label for a request that matched no view

# django-prometheus families that docs/metrics.md lists (the metric contract); every other
# family of its Metrics class is replaced by a no-op and never exported (docs/web-observability.md).
CONTRACT_FAMILIES = frozenset({
    "django_http_requests_latency_seconds_by_view_method",
    "django_http_responses_total_by_status_view_method",
    "django_http_requests_total_by_view_transport_method",
    "django_http_exceptions_total_by_type",
})


class _NoOp:
    """Stands in for a dropped family: accepts the calls django-prometheus makes, records nothing."""

    def labels(self, *args, **kwargs):
        return self

    def inc(self, amount=1):
        pass

    def observe(self, amount):
        pass


_NOOP = _NoOp()


class ContractMetrics(Metrics):
    """django-prometheus' metrics, only the families of the metric contract (docs/metrics.md)."""

    _instance = None

    def register_metric(self, metric_cls, name, documentation, labelnames=(), **kwargs):
        if name not in CONTRACT_FAMILIES:
            return _NOOP
        return super().register_metric(metric_cls, name, documentation, labelnames=labelnames, **kwargs)


class _Children(dict):
    """Labelled children of one metric by label-value tuple; a miss creates the child once."""

    def __init__(self, metric):
        super().__init__()
        self.metric = metric

    def __missing__(self, key):
        child = self[key] = self.metric.labels(*key)
        return child


def view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name if match is not None else None) or UNRESOLVED


def _method(request) -> str:
    method = request.method
    return method if method in _METHODS else "<invalid method>"


class RequestMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.slow_seconds = settings.OBS_SLOW_REQUEST_SECONDS
        m = ContractMetrics.get_instance()
        self.latency = _Children(m.requests_latency_by_view_method)  # (view, method)
        self.responses = _Children(m.responses_by_status_view_method)  # (status, view, method)
        self.by_view = _Children(m.requests_by_view_transport_method)  # (view, transport, method)
        self.exceptions = _Children(m.exceptions_by_type)  # (type,)
        self.in_flight = metrics.requests_in_flight
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.async_mode:
            return self._acall(request)
        started = self._begin(request)
        try:
            response = self.get_response(request)
        except SystemExit:  # gunicorn aborts the worker (timeout): keep the request on record
            self.in_flight.dec()
            raise
        except BaseException:
            self._end(request, None, started)
            raise
        self._end(request, response, started)
        return response

    async def _acall(self, request):
        started = self._begin(request)
        try:
            response = await self.get_response(request)
        except SystemExit:
            self.in_flight.dec()
            raise
        except BaseException:  # e.g. the client went away and the task was cancelled
            self._end(request, None, started)
            raise
        self._end(request, response, started)
        return response

    def _begin(self, request) -> float:
        started = time.perf_counter()
        request._obs_wall_started = time.time()  # Sentry keeps the breadcrumbs since then
        request.request_id = None
        request._obs_token = None
        try:
            meta = request.META
            rid = meta.get("HTTP_X_REQUEST_ID", "")
            # A new id is 32 hex digits, as uuid4().hex gave, at a third of the cost.
            request.request_id = rid if rid and _REQUEST_ID.match(rid) else os.urandom(16).hex()
            start_header = meta.get("HTTP_X_REQUEST_START")
            if start_header is not None:
                waited = queue_time.queue_seconds(start_header)
                if waited is not None:
                    metrics.request_queue_seconds.observe(waited)
        except Exception:
            instrumentation_failed("begin")
            if request.request_id is None:
                request.request_id = os.urandom(16).hex()
        self.in_flight.inc()
        try:
            request._obs_token = evidence.begin(UNRESOLVED, request.method, request.path, request.request_id)
        except Exception:
            instrumentation_failed("begin")
        return started

    def process_view(self, request, view_func, view_args, view_kwargs):
        try:
            name = request.resolver_match.view_name or UNRESOLVED
            self.by_view[name, "https" if request.is_secure() else "http", _method(request)].inc()
            evidence.set_view(getattr(request, "_obs_token", None), name)
        except Exception:
            instrumentation_failed("begin")

    def process_exception(self, request, exception):
        self.exceptions[(type(exception).__name__,)].inc()

    def _end(self, request, response, started: float) -> None:
        duration = time.perf_counter() - started
        self.in_flight.dec()
        try:
            self._record(request, response, duration)
        except Exception:
            instrumentation_failed("end")

    def _record(self, request, response, duration: float) -> None:
        evidence.end(getattr(request, "_obs_token", None))
        if response is None:
            return
        view, method = view_name(request), _method(request)
        self.responses[str(response.status_code), view, method].inc()
        self.latency[view, method].observe(duration)
        response["X-Request-ID"] = request.request_id
        if duration >= self.slow_seconds:
            metrics.slow_requests.labels(view, method).inc()
            fields = {"view": view, "method": method, "status": response.status_code, "duration_seconds": round(duration, 3),
                      "request_id": request.request_id, "path": request.path}
            log.warning("slow request %s", " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items()),
                        extra={"slow_request": fields})


_logfmt = logsafe.logfmt  # request paths are percent-decoded: CR/LF and controls escaped (issue 11)


def count_refused(status: int, method: str, duration: float) -> None:
    """Count an answer given before Django ran (the ASGI/WSGI guard) as django-prometheus would."""
    m = ContractMetrics.get_instance()
    method = method if method in _METHODS else "<invalid method>"
    m.responses_by_status_view_method.labels(str(status), UNRESOLVED, method).inc()
    m.requests_latency_by_view_method.labels(UNRESOLVED, method).observe(duration)
