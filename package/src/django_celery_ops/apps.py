from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured


class DjangoCeleryOpsConfig(AppConfig):
    """Registers the system checks and, unless DB_METRICS is off, the database metrics."""

    name = "django_celery_ops"
    label = "django_celery_ops"
    verbose_name = "Django Celery Ops"

    def ready(self) -> None:
        from . import checks  # noqa: F401 (registers the checks)
        from . import db

        try:
            db.install()
        except ImproperlyConfigured:
            pass  # a wrong DB_METRICS or LATENCY_BUCKETS: check E002 names it (manage.py check)


__all__ = ["DjangoCeleryOpsConfig"]
