"""Celery set-up in one call: ``django_celery_ops.celery.instrument(app)`` in your project's celery.py.

It makes the app's task class count what Celery signals nowhere (requeues, time-limit hits),
connects the task-counter signal receivers and the worker-state tracking, and initialises Sentry
in the worker and its children when a DSN is configured (docs/celery-observability.md).
"""
from __future__ import annotations

from celery import signals

TASK_CLS = "django_celery_ops.celery_metrics:ObservedTask"


def instrument(app, *, metrics: bool = True, sentry: bool = True):
    """Instrument a Celery app; call it right after ``Celery(...)``, before tasks are defined. Returns app."""
    from . import celery_metrics, celery_workers

    if metrics:
        if "Task" in app.__dict__:  # Celery builds app.Task once, from app.task_cls, on first use
            raise RuntimeError("django_celery_ops.celery.instrument(app) must run before the app's first task is defined")
        app.task_cls = observed_task_cls(app.task_cls)
        celery_metrics.connect()
    celery_workers.connect()
    if sentry:
        from . import sentry as _sentry

        signals.worker_init.connect(_sentry.init_celery, weak=False, dispatch_uid="django_celery_ops.sentry.main")
        signals.worker_process_init.connect(_sentry.init_celery, weak=False,
                                            dispatch_uid="django_celery_ops.sentry.child")
    return app


def observed_task_cls(base):
    """The app's task class with ObservedRequest mixed in; keeps the base (Celery's Django fixup
    makes it DjangoTask, a project may have its own)."""
    from celery.utils.imports import symbol_by_name

    from .celery_metrics import ObservedTask

    base = symbol_by_name(base) if isinstance(base, str) else base
    if issubclass(base, ObservedTask):
        return base
    return type("ObservedTask", (ObservedTask, base), {"__module__": ObservedTask.__module__})


__all__ = ["instrument", "observed_task_cls", "TASK_CLS"]
