"""The Celery application; configuration comes from Django settings (CELERY_*)."""
import os

from celery import Celery, signals

from app.observability import celery_metrics, celery_workers, sentry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")

# ObservedTask counts what Celery signals nowhere (requeues, time-limit hits); the signal
# receivers count the rest, in every process that loads this app (docs/celery-observability.md).
# OBS_CELERY_METRICS=0 leaves Celery plain (bench/celery compares the two).
_METRICS = os.environ.get("OBS_CELERY_METRICS", "1") != "0"
app = Celery("app", task_cls="app.observability.celery_metrics:ObservedTask" if _METRICS else None)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
if _METRICS:
    celery_metrics.connect()
celery_workers.connect()
signals.worker_init.connect(sentry.init_celery, weak=False, dispatch_uid="obs.sentry.main")
signals.worker_process_init.connect(sentry.init_celery, weak=False, dispatch_uid="obs.sentry.child")
