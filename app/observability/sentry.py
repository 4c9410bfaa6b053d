"""Sentry set-up: off (no error) without SENTRY_DSN; one init per process, after the fork.

The SDK starts a background sender thread, so it must be initialised in each worker, never
in a parent that forks (gunicorn's master): a fork copies no threads, only their locks.
"""
from __future__ import annotations

import json
import os

import sentry_sdk


def _integrations(extra: tuple, tracing: bool = True) -> list:
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    # Spans for every middleware, signal and cache call cost about half of the SDK's
    # per-request overhead (bench/web/RESULTS.md): only worth it when requests are traced.
    spans = {} if tracing else {"middleware_spans": False, "signals_spans": False, "cache_spans": False}

    # One place for the integrations of every process kind; add e.g. CeleryIntegration here
    # or pass it as `extra` from the process that needs it. CeleryIntegration in a producer
    # (web) adds the trace headers to each task message; in a worker it reports task
    # exceptions with the task name and continues the web request's trace.
    return [DjangoIntegration(**spans), CeleryIntegration(monitor_beat_tasks=False), *extra]


def init(extra_integrations: tuple = ()) -> bool:
    """Initialise the SDK from the SENTRY_* settings; return False (and do nothing) without a DSN."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
    from django.conf import settings

    if not settings.SENTRY_DSN:
        return False
    sentry_sdk.init(
        dsn=settings.SENTRY_DSN,
        environment=settings.SENTRY_ENVIRONMENT,
        release=settings.SENTRY_RELEASE,
        # 0 means no tracing at all (None): with a rate of 0.0 the SDK still builds an unsampled
        # transaction and its spans for every request, which costs as much as sampling a few.
        traces_sample_rate=settings.SENTRY_TRACES_SAMPLE_RATE or None,
        send_default_pii=False,
        integrations=_integrations(tuple(extra_integrations), tracing=bool(settings.SENTRY_TRACES_SAMPLE_RATE)),
    )
    return True


def init_celery(**_) -> bool:
    """worker_init and worker_process_init receiver (Celery's main process, then each pool child).

    The main process must have it before the pool starts: CeleryIntegration patches the task
    tracer, which children build before worker_process_init; the child then re-initialises
    so that its sender thread and locks are its own, not copies from the fork.
    """
    return init()


def enabled() -> bool:
    return sentry_sdk.get_client().is_active()


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
