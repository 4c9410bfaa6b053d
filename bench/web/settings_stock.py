"""Bench-only settings: stock django-prometheus 2.5 in multiprocess mode, the anchor of bench/web/run.py.

As django-prometheus documents it: `django_prometheus` in INSTALLED_APPS, PrometheusBeforeMiddleware
first and PrometheusAfterMiddleware last, and prometheus_client's own multiprocess storage (files
named by pid under PROMETHEUS_MULTIPROC_DIR), not the library's slot storage, which app/__init__.py
installed on import: it is put back before django-prometheus creates its metrics. None of the
library's instrumentation (app, middlewares, DB metrics) is present; never used by the app itself.
"""
from prometheus_client import values

from app.settings import *  # noqa: F403

values.ValueClass = values.MultiProcessValue()  # prometheus_client's pid-file storage

INSTALLED_APPS = [a for a in INSTALLED_APPS if a != "django_celery_ops"] + ["django_prometheus"]  # noqa: F405
MIDDLEWARE = ["django_prometheus.middleware.PrometheusBeforeMiddleware",
              *[m for m in MIDDLEWARE if not m.startswith("django_celery_ops.")],  # noqa: F405
              "django_prometheus.middleware.PrometheusAfterMiddleware"]
DJANGO_CELERY_OPS = {**DJANGO_CELERY_OPS, "DB_METRICS": False}  # noqa: F405
