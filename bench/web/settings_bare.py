"""Bench-only settings: the app without any metrics (no django-prometheus, no request middleware).

The baseline layer of bench/web/run.py; never used by the app itself.
"""
from app.settings import *

INSTALLED_APPS = [a for a in INSTALLED_APPS if a != "django_prometheus"]
MIDDLEWARE = [m for m in MIDDLEWARE if "prometheus" not in m and "observability" not in m]
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django_prometheus.db.backends", "django.db.backends")
