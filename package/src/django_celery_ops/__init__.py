"""django-celery-ops: production instrumentation for Django and Celery (docs/metrics.md is the contract).

Public API (everything else is internal and may change):
- INSTALLED_APPS: "django_celery_ops"; MIDDLEWARE (first): "django_celery_ops.middleware.RequestMiddleware"
- settings: one dict, DJANGO_CELERY_OPS (defaults in django_celery_ops.conf)
- gunicorn: ``gunicorn -c python:django_celery_ops.gunicorn_conf`` (or import it from your own config)
- Celery: ``django_celery_ops.celery.instrument(app)``
- Sentry: ``django_celery_ops.sentry.init()``
- console scripts: django-celery-ops-exporter, django-celery-ops-metrics, django-celery-ops-monitoring
- building blocks for a project's own wiring (PUBLIC below): ``conf.get``, the ``env`` readers,
  ``multiprocess.setup`` (a process's own metric slot), ``celery_queues.measure`` (queue lengths
  on a broker connection), ``loop_lag.instrument`` (an ASGI app with the event-loop lag monitor),
  ``middleware.count_refused`` / ``instrumentation_failed`` (for a project's own request guard)
- profiling (extra ``profiling``): MIDDLEWARE "django_celery_ops.profiling.ProfilingMiddleware" (after
  AuthenticationMiddleware; pyinstrument profiles on a secret token or a staff opt-in, docs/profiling.md)
- slow-request stacks: ``slowstack.start()`` / ``stop()`` (the gunicorn hooks start it in every worker)

Importing the package chooses the multiprocess metric storage (when PROMETHEUS_MULTIPROC_DIR is
set) before any metric exists, so it must be imported before prometheus_client metrics are made.
"""
from . import multiprocess as _multiprocess

__version__ = "0.2.0"
METRICS_CONTRACT_VERSION = "2"  # docs/metrics.md: the names, labels and semantics this release exports

_multiprocess.install()

# The public API by module: what a project may import (tests/library/test_package.py checks that
# the reference app in app/ imports nothing else, and that each name is in its module's __all__).
PUBLIC = {
    "django_celery_ops.middleware": ("RequestMiddleware", "count_refused", "instrumentation_failed", "view_name",
                                     "UNRESOLVED"),
    "django_celery_ops.celery": ("instrument", "observed_task_cls", "TASK_CLS"),
    "django_celery_ops.gunicorn_conf": ("*",),
    "django_celery_ops.sentry": ("init", "init_celery", "enabled"),
    "django_celery_ops.conf": ("get", "DEFAULTS", "SETTING"),
    "django_celery_ops.env": ("env_str", "env_bool", "env_int", "env_float", "env_list"),
    "django_celery_ops.multiprocess": ("install", "setup", "directory", "collector_registry"),
    "django_celery_ops.celery_queues": ("measure",),
    "django_celery_ops.loop_lag": ("instrument",),
    "django_celery_ops.profiling": ("ProfilingMiddleware",),
    "django_celery_ops.slowstack": ("start", "stop"),
    "django_celery_ops.exporter": ("main",),
    "django_celery_ops.metrics_server": ("main",),
    "django_celery_ops.monitoring.cli": ("main",),
}

__all__ = ["__version__", "METRICS_CONTRACT_VERSION", "PUBLIC"]
