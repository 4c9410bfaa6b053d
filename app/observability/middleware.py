"""Per-request instrumentation: request id, requests in flight, queue time, slow requests.

Put it first in MIDDLEWARE so that it times everything Django does. django-prometheus'
middlewares keep counting requests and latency by view; this adds what they lack.
"""
from __future__ import annotations

import json
import logging
import re
import time
import uuid

import sentry_sdk
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings

from app.observability import evidence, metrics, queue_time, sentry

log = logging.getLogger("app.observability.slow")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # goes into logs: no spaces, quotes or newlines
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH"})
UNRESOLVED = "<unnamed view>"  # django-prometheus' label for a request that matched no view


def view_name(request) -> str:
    match = getattr(request, "resolver_match", None)
    return (match.view_name if match is not None else None) or UNRESOLVED


def _method(request) -> str:
    return request.method if request.method in _METHODS else "<invalid method>"


class RequestMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        self.slow_seconds = settings.OBS_SLOW_REQUEST_SECONDS
        self.sentry = sentry.enabled()  # initialised in the worker before Django loads middleware
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
            metrics.requests_in_flight.dec()
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
            metrics.requests_in_flight.dec()
            raise
        except BaseException:  # e.g. the client went away and the task was cancelled
            self._end(request, None, started)
            raise
        self._end(request, response, started)
        return response

    def _begin(self, request) -> float:
        started = time.perf_counter()
        rid = request.headers.get("X-Request-ID", "")
        request.request_id = rid if _REQUEST_ID.match(rid) else uuid.uuid4().hex
        waited = queue_time.queue_seconds(request.META.get("HTTP_X_REQUEST_START"))
        if waited is not None:
            metrics.request_queue_seconds.observe(waited)
        metrics.requests_in_flight.inc()
        request._obs_token = evidence.begin(UNRESOLVED, request.method, request.path, request.request_id)
        return started

    def process_view(self, request, view_func, view_args, view_kwargs):
        name = view_name(request)
        evidence.set_view(getattr(request, "_obs_token", None), name)
        if self.sentry:
            sentry_sdk.get_isolation_scope().set_tag("view", name)

    def _end(self, request, response, started: float) -> None:
        duration = time.perf_counter() - started
        metrics.requests_in_flight.dec()
        evidence.end(getattr(request, "_obs_token", None))
        if response is None:
            return
        response["X-Request-ID"] = request.request_id
        if duration >= self.slow_seconds:
            view, method = view_name(request), _method(request)
            metrics.slow_requests.labels(view, method).inc()
            fields = {"view": view, "method": method, "status": response.status_code, "duration_seconds": round(duration, 3),
                      "request_id": request.request_id, "path": request.path}
            log.warning("slow request %s", " ".join(f"{k}={_logfmt(v)}" for k, v in fields.items()),
                        extra={"slow_request": fields})


def _logfmt(value) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c in text for c in ' "=\\')) else text
