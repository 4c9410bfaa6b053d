"""Bench-only settings: the app without any metrics (no django_celery_ops app or middleware).

The baseline layer of bench/web/run.py; never used by the app itself.
"""
from app.settings import *

INSTALLED_APPS = [a for a in INSTALLED_APPS if a != "django_celery_ops"]  # no database metrics
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("django_celery_ops.")]
DJANGO_CELERY_OPS = {**DJANGO_CELERY_OPS, "DB_METRICS": False}
