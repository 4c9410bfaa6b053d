"""The Celery application; configuration comes from Django settings (CELERY_*)."""
import os

from celery import Celery
from django_celery_ops.celery import instrument

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")

app = Celery("app")
# The library's one call: task counters, time-limit hits, worker state, Sentry in the workers
# (docs/celery-observability.md). OBS_CELERY_METRICS=0 leaves Celery plain (bench/celery compares).
instrument(app, metrics=os.environ.get("OBS_CELERY_METRICS", "1") != "0")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
