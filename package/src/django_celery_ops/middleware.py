"""Per-request instrumentation in one pass: the django-prometheus families of docs/metrics.md,
request id, requests in flight, queue time, slow requests and the timeout evidence.

Put it first in MIDDLEWARE so that it times everything Django does (system check
django_celery_ops.W005 says when it is not). It replaces django-prometheus'
PrometheusBeforeMiddleware/PrometheusAfterMiddleware without depending on the package: same
family names, labels and label values (metrics.http()), only the families django-mixin's
dashboards and our rules read. Per request: one perf_counter pair, a recorder per labelled child
cached in plain dicts (no `.labels()` lock), 9 slot-file writes (slotvalue.py: one double
stored into the mapping each; in-flight +1/-1, requests by view, responses by status, latency,
request and response body sizes: sum and bucket each, an empty body's sum skipped), 11 with
X-Request-Start (queue time), and the timeout evidence: the request written once when it
starts, its view's field overwritten once the URL resolved, 4 idle bytes at the end
(evidence.py). bench/web/marginal.py measures the whole pass (CPU, or instructions under
valgrind). Under ASGI every hook runs in the event loop: no sync_to_async hop per request.
"""
from __future__ import annotations

import logging
import re
import sys
import time
import traceback
import random

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from prometheus_client import Counter

from django.conf import settings

from . import conf, evidence, logsafe, metrics, queue_time, slotvalue

log = logging.getLogger("django_celery_ops.slow")
_errors_log = logging.getLogger("django_celery_ops.errors")

# A failure inside the instrumentation (or the ASGI guard, or the rate limiter's cache) is
# counted here and logged; the request goes on. DjangoInstrumentationErrors alerts on it.
INSTRUMENTATION_STAGES = ("begin", "end", "guard", "rate_limit", "evidence")  # evidence: the gunicorn hooks
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


_inc_of, _observe_of = slotvalue.inc_of, slotvalue.observe_of
_getrandbits = random.getrandbits  # the module's generator: Python reseeds it in every forked child


def _new_request_id() -> str:
    """32 hex digits, as uuid4().hex gave, at a third of the cost (no system call per request)."""
    return "%032x" % _getrandbits(128)


class _Children(dict):
    """Recorders of one metric's labelled children by label-value tuple; a miss makes one once."""

    def __init__(self, metric, make=_inc_of):
        super().__init__()
        self.metric, self.make = metric, make

    def __missing__(self, key):
        recorder = self[key] = self.make(self.metric.labels(*key))
        return recorder


def view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name if match is not None else None) or UNRESOLVED


class _Uncounted(float):
    """A request's start time (perf_counter) when its in-flight +1 failed: its -1 is skipped."""

    __slots__ = ()


class RequestMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.slow_seconds = conf.get("SLOW_REQUEST_SECONDS")
        m = metrics.http()
        # Each entry is f(amount): the child's value written directly (see _inc_of, _observe_of).
        self.latency = _Children(m.latency, _observe_of)  # (view, method)
        self.responses = _Children(m.responses)  # (status, view, method)
        self.by_view = _Children(m.by_view)  # (view, transport, method)
        self.exceptions = _Children(m.exceptions_by_type)  # (type,)
        self.exceptions_by_view = _Children(m.exceptions_by_view)  # (view,)
        self.by_template = _Children(m.by_template)  # (templatename,)
        self.request_body, self.response_body = _observe_of(m.request_body), _observe_of(m.response_body)
        self.streaming = _inc_of(m.streaming)
        self.in_flight = _inc_of(metrics.requests_in_flight)
        self.queue_seconds = _observe_of(metrics.request_queue_seconds)
        self.statuses: dict = {}  # status code -> its label value (str() once per code)
        self.set_request_id = _request_id_setter()
        self.transport = _transport_of(getattr(settings, "SECURE_PROXY_SSL_HEADER", None))
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)
            # Django runs a sync process_view of an async chain through sync_to_async: a hop to the
            # sync thread and back on every request. These do no I/O: run them in the loop.
            self.process_view = self._aprocess_view
            self.process_template_response = self._aprocess_template_response

    def __call__(self, request):
        if self.async_mode:
            return self._acall(request)
        started = self._begin(request)
        try:
            response = self.get_response(request)
        except SystemExit:  # gunicorn aborts the worker (timeout): keep the request on record
            self._left(started)
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
            self._left(started)
            raise
        except BaseException:  # e.g. the client went away and the task was cancelled
            self._end(request, None, started)
            raise
        self._end(request, response, started)
        return response

    def _begin(self, request) -> float:
        started = request._obs_started = time.perf_counter()  # Sentry keeps the breadcrumbs since then
        # Two attributes on the request here (its id, the evidence token), the view in process_view:
        # readers use getattr() with a default for the ones an early failure left unset.
        rid = None
        try:
            meta = request.META
            rid = meta.get("HTTP_X_REQUEST_ID")
            if not rid or not _REQUEST_ID.match(rid):
                rid = _new_request_id()
            start_header = meta.get("HTTP_X_REQUEST_START")
            if start_header is not None:
                waited = queue_time.queue_seconds(start_header)
                if waited is not None:
                    self.queue_seconds(waited)
        except Exception:
            instrumentation_failed("begin")
            if rid is None or not isinstance(rid, str) or not _REQUEST_ID.match(rid):
                rid = _new_request_id()
        request.request_id = rid
        try:
            self.in_flight(1)
        except Exception:
            instrumentation_failed("begin")
            started = _Uncounted(started)  # so that _end() takes back only what was added
        try:
            request._obs_token = evidence.begin(UNRESOLVED, request.method, request.path, rid)
        except Exception:
            request._obs_token = None
            instrumentation_failed("begin")
        return started

    async def _aprocess_view(self, request, view_func, view_args, view_kwargs):
        RequestMiddleware.process_view(self, request, view_func, view_args, view_kwargs)

    async def _aprocess_template_response(self, request, response):
        return RequestMiddleware.process_template_response(self, request, response)

    def process_view(self, request, view_func, view_args, view_kwargs):
        try:
            name = request._obs_view = request.resolver_match.view_name or UNRESOLVED
            method = request.method
            if method not in _METHODS:
                method = "<invalid method>"
            self.by_view[name, self.transport(request), method](1)
            evidence.set_view(getattr(request, "_obs_token", None), name)
        except Exception:
            instrumentation_failed("begin")

    def process_exception(self, request, exception):
        try:
            self.exceptions[(type(exception).__name__,)](1)
            match = getattr(request, "resolver_match", None)
            if match is not None:
                self.exceptions_by_view[(match.view_name or UNRESOLVED,)](1)
        except Exception:
            instrumentation_failed("end")

    def process_template_response(self, request, response):
        try:
            if hasattr(response, "template_name"):
                self.by_template[(str(response.template_name),)](1)
        except Exception:
            instrumentation_failed("end")
        return response

    def _end(self, request, response, started: float) -> None:
        """Count and time the finished request (response None: it raised), once, in one frame."""
        duration = time.perf_counter() - started
        if type(started) is not _Uncounted:  # its +1 failed: no -1 (and a failing -1 fails nothing else)
            try:
                self.in_flight(-1)
            except Exception:
                instrumentation_failed("end")
        try:
            evidence.end(getattr(request, "_obs_token", None))
            if response is None:
                return
            view = getattr(request, "_obs_view", None) or view_name(request)
            method = request.method
            if method not in _METHODS:
                method = "<invalid method>"
            code = response.status_code
            status = self.statuses.get(code)
            if status is None:
                status = self.statuses[code] = str(code)
            self.responses[status, view, method](1)
            self.latency[view, method](duration)
            length = request.META.get("CONTENT_LENGTH")
            self.request_body(_content_length(length) if length else 0)
            if getattr(response, "streaming", False):
                self.streaming(1)
            else:
                self.response_body(len(response.content))
            self.set_request_id(response, request.request_id)
            if duration >= self.slow_seconds:
                self._slow(request, response, view, method, duration)
        except Exception:
            instrumentation_failed("end")

    def _left(self, started: float) -> None:
        """The request leaves without _end() (the worker is aborted): take its in-flight count back."""
        try:
            if type(started) is not _Uncounted:
                self.in_flight(-1)
        except Exception:
            instrumentation_failed("end")

    def _slow(self, request, response, view: str, method: str, duration: float) -> None:
        metrics.slow_requests.labels(view, method).inc()
        fields = {"view": view, "method": method, "status": response.status_code, "duration_seconds": round(duration, 3),
                  "request_id": request.request_id, "path": request.path}
        profile = getattr(request, "django_celery_ops_profile", None)  # ProfilingMiddleware wrote one
        if profile:
            fields["profile"] = str(profile)
        log.warning("slow request %s", " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items()),
                    extra={"slow_request": fields})


def _set_header(response, value: str) -> None:
    response["X-Request-ID"] = value


def _request_id_setter():
    """``f(response, request_id)`` setting X-Request-ID.

    The id is ASCII without controls (_REQUEST_ID, or hex we made), so Django's per-header charset
    conversion and newline check (most of a header's cost) can be skipped by writing its store;
    used only when a probe response shows the store behaves as Django's own header set does.
    """
    from django.http import HttpResponse

    probe, expected = HttpResponse(), HttpResponse()
    try:
        store = probe.headers._store

        def fast(response, value):
            response.headers._store["x-request-id"] = ("X-Request-ID", value)

        if not isinstance(store, dict):
            return _set_header
        fast(probe, "rid-1")
        _set_header(expected, "rid-1")
        if (probe.headers["X-Request-ID"] == "rid-1" and list(probe.items()) == list(expected.items())
                and probe.serialize_headers() == expected.serialize_headers()):
            return fast
    except Exception:  # another Django: the public way
        pass
    return _set_header


def _transport_of(proxy_ssl_header):
    """``f(request)`` giving "https" or "http" as ``request.is_secure()`` would, with the setting read
    once (at startup) instead of on every request."""
    if not proxy_ssl_header:
        return _scheme
    try:
        header, secure_value = proxy_ssl_header
    except (TypeError, ValueError):  # Django's ImproperlyConfigured, from is_secure(), on each request
        return lambda request: "https" if request.is_secure() else "http"

    def transport(request):
        value = request.META.get(header)
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
        return _scheme(request)

    return transport


def _scheme(request) -> str:
    """The transport without a proxy header: the WSGI environ's (or the ASGI scope's) scheme."""
    return "https" if request._get_scheme() == "https" else "http"


def _content_length(value: str) -> int:
    """The request body's size the CONTENT_LENGTH header gives (0 when it is not a number)."""
    try:
        return int(value)
    except ValueError:
        return 0


_logfmt = logsafe.logfmt  # request paths are percent-decoded: CR/LF and controls escaped (issue 11)


def count_refused(status: int, method: str, duration: float) -> None:
    """Count an answer given before Django ran (the ASGI/WSGI guard) as django-prometheus would."""
    m = metrics.http()
    method = method if method in _METHODS else "<invalid method>"
    m.responses.labels(str(status), UNRESOLVED, method).inc()
    m.latency.labels(UNRESOLVED, method).observe(duration)


__all__ = ["RequestMiddleware", "count_refused", "instrumentation_failed", "view_name", "UNRESOLVED"]
