"""django-celery-ops: production instrumentation for Django and Celery (docs/metrics.md is the contract).

Public API (everything else is internal and may change):
- INSTALLED_APPS: "django_celery_ops"; MIDDLEWARE (first): "django_celery_ops.middleware.RequestMiddleware"
- settings: one dict, DJANGO_CELERY_OPS (defaults in django_celery_ops.conf)
- gunicorn: ``gunicorn -c python:django_celery_ops.gunicorn_conf`` (or import it from your own config)
- Celery: ``django_celery_ops.celery.instrument(app)``
- Sentry: ``django_celery_ops.sentry.init()``
- console scripts: django-celery-ops-exporter, django-celery-ops-metrics, django-celery-ops-monitoring

Importing the package chooses the multiprocess metric storage (when PROMETHEUS_MULTIPROC_DIR is
set) before any metric exists, so it must be imported before prometheus_client metrics are made.
"""
from . import multiprocess as _multiprocess

__version__ = "0.2.0"
METRICS_CONTRACT_VERSION = "2"  # docs/metrics.md: the names, labels and semantics this release exports

_multiprocess.install()

__all__ = ["__version__", "METRICS_CONTRACT_VERSION"]
