"""Sentry set-up: off (no error) without a DSN (DJANGO_CELERY_OPS["SENTRY"] or SENTRY_DSN); one init per process, after the fork.

The SDK starts a background sender thread, so it must be initialised in each worker, never
in a parent that forks (gunicorn's master): a fork copies no threads, only their locks.
"""
from __future__ import annotations

import json
import os
import time

try:
    import sentry_sdk
except ImportError:  # the [sentry] extra is not installed: Sentry stays off unless a DSN asks for it
    sentry_sdk = None

MISSING_SDK = ("a Sentry DSN is configured (DJANGO_CELERY_OPS['SENTRY']['DSN'] or SENTRY_DSN) but sentry-sdk "
               "is not installed: pip install 'django-celery-ops[sentry]'")


def _celery_integration() -> list:
    """CeleryIntegration when Celery is installed (the [celery] extra); a web-only install has none."""
    from sentry_sdk.integrations import DidNotEnable

    try:
        from sentry_sdk.integrations.celery import CeleryIntegration
    except (ImportError, DidNotEnable):
        return []
    return [CeleryIntegration(monitor_beat_tasks=False)]


def _integrations(extra: tuple, tracing: bool = True) -> list:
    from sentry_sdk.integrations.django import DjangoIntegration

    # One place for the integrations of every process kind; add e.g. CeleryIntegration here
    # or pass it as `extra` from the process that needs it. CeleryIntegration in a producer
    # (web) adds the trace headers to each task message; in a worker it reports task
    # exceptions with the task name and continues the web request's trace.
    celery = _celery_integration()
    if not tracing:
        # Errors only: no DjangoIntegration (it wraps every request in a scope fork, a session
        # and a transaction context even when nothing is traced: most of the SDK's cost per
        # request, bench/web/RESULTS.md). Request exceptions are reported by _report_exception
        # from Django's got_request_exception signal instead, at no cost per request.
        return [*celery, *extra]
    return [DjangoIntegration(), *celery, *extra]


def init(extra_integrations: tuple = (), *, dsn: str | None = None, environment: str | None = None,
         release: str | None = None, traces_sample_rate: float | None = None) -> bool:
    """Initialise the SDK; return False (and do nothing) without a DSN.

    Each argument left at None comes from DJANGO_CELERY_OPS["SENTRY"] (DSN, ENVIRONMENT, RELEASE,
    TRACES_SAMPLE_RATE), whose defaults are the SENTRY_* environment variables.
    """
    from django.conf import settings

    from . import conf

    if dsn is None and not (settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE")):
        return False  # no settings to read the DSN from (e.g. a bare gunicorn master)
    configured = conf.get("SENTRY")
    dsn = configured["DSN"] if dsn is None else dsn
    if not dsn:
        return False
    if sentry_sdk is None:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(MISSING_SDK)
    from sentry_sdk.integrations.django import DjangoIntegration

    rate = configured["TRACES_SAMPLE_RATE"] if traces_sample_rate is None else traces_sample_rate
    tracing = bool(rate)
    sentry_sdk.init(
        dsn=dsn,
        environment=configured["ENVIRONMENT"] if environment is None else environment,
        release=configured["RELEASE"] if release is None else release,
        # 0 means no tracing at all (None): with a rate of 0.0 the SDK still builds an unsampled
        # transaction and its spans for every request, which costs as much as sampling a few.
        traces_sample_rate=rate or None,
        send_default_pii=False,
        integrations=_integrations(tuple(extra_integrations), tracing=tracing),
        # The SDK would auto-enable DjangoIntegration since Django is installed.
        disabled_integrations=[] if tracing else [DjangoIntegration],
        # Release-health sessions are opened per request by the WSGI/ASGI wrappers only
        # (DjangoIntegration); without them there is nothing to track in a web worker.
        auto_session_tracking=tracing,
    )
    from django.core.signals import got_request_exception

    if tracing:
        got_request_exception.disconnect(_report_exception)
    else:
        got_request_exception.connect(_report_exception, dispatch_uid="django_celery_ops.sentry")
    return True


def _report_exception(sender=None, request=None, **_) -> None:
    """got_request_exception receiver (errors only): report the view's exception to Sentry.

    Django sends the signal for the exceptions it gives up on (the 500s), not for Http404,
    PermissionDenied or SuspiciousOperation: the same set DjangoIntegration reports. The event
    carries what DjangoIntegration's would without tracing: the URL pattern as transaction,
    the request (PII-free, send_default_pii=False), the release, plus our `view` tag.
    """
    import sys

    from sentry_sdk.utils import capture_internal_exceptions, event_from_exception

    exc_info = sys.exc_info()
    client = sentry_sdk.get_client()
    if exc_info[0] is None or not client.is_active():
        return
    with sentry_sdk.new_scope() as scope:
        if request is not None:
            with capture_internal_exceptions():
                _describe_request(scope, request)
        event, hint = event_from_exception(exc_info, client_options=client.options,
                                           mechanism={"type": "django", "handled": False})
        sentry_sdk.capture_event(event, hint=hint)


def _describe_request(scope, request) -> None:
    from sentry_sdk.integrations.django import DjangoRequestExtractor
    from sentry_sdk.integrations.django.transactions import LEGACY_RESOLVER
    from sentry_sdk.tracing import TransactionSource
    from sentry_sdk.utils import capture_internal_exceptions

    from .middleware import view_name

    scope.set_tag("view", view_name(request))
    route = LEGACY_RESOLVER.resolve(request.path_info, getattr(request, "urlconf", None))
    scope.set_transaction_name(route or request.path_info, source=TransactionSource.URL)
    began = getattr(request, "_obs_started", None)  # RequestMiddleware's perf_counter() at the start
    started = None if began is None else time.time() - (time.perf_counter() - began)

    def processor(event, hint):
        with capture_internal_exceptions():
            DjangoRequestExtractor(request).extract_into_event(event)
        # No per-request isolation scope without DjangoIntegration: keep only the breadcrumbs
        # recorded since this request started (the process's scope holds earlier requests' too).
        crumbs = event.get("breadcrumbs")
        if started is not None and isinstance(crumbs, dict) and crumbs.get("values"):
            crumbs["values"] = [c for c in crumbs["values"] if _after(c.get("timestamp"), started)]
        return event

    scope.add_event_processor(processor)


def _after(timestamp, started: float) -> bool:
    try:
        return timestamp.timestamp() >= started
    except AttributeError:
        return True


def init_celery(**_) -> bool:
    """worker_init and worker_process_init receiver (Celery's main process, then each pool child).

    The main process must have it before the pool starts: CeleryIntegration patches the task
    tracer, which children build before worker_process_init; the child then re-initialises
    so that its sender thread and locks are its own, not copies from the fork.
    """
    return init()


def enabled() -> bool:
    return sentry_sdk is not None and sentry_sdk.get_client().is_active()


def report_timeouts(directory: str) -> int:
    """Send the master's reports of timed-out workers (it has no SDK of its own); return how many."""
    if not enabled() or not os.path.isdir(directory):
        return 0
    sent = 0
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json"):
            continue
        claimed = os.path.join(directory, f"{name}.{os.getpid()}")
        try:
            os.rename(os.path.join(directory, name), claimed)  # one worker sends each report
            with open(claimed) as f:
                report = json.load(f)
        except (OSError, ValueError):
            continue
        with sentry_sdk.new_scope() as scope:
            for key in ("view", "method", "path", "request_id"):
                if report.get(key):
                    scope.set_tag(key, report[key])
            scope.set_context("worker_timeout", report)
            scope.fingerprint = ["gunicorn-worker-timeout", report.get("view") or "unknown"]
            if report.get("view"):
                scope.set_transaction_name(report["view"])
            sentry_sdk.capture_message(
                f"WORKER TIMEOUT in {report.get('view') or 'unknown view'} "
                f"({report.get('method', '')} {report.get('path', '')})", level="error")
        os.unlink(claimed)
        sent += 1
    return sent


__all__ = ["enabled", "init", "init_celery", "report_timeouts"]
