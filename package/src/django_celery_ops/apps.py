from django.apps import AppConfig


class DjangoCeleryOpsConfig(AppConfig):
    name = "django_celery_ops"
    label = "django_celery_ops"
    verbose_name = "Django Celery Ops"
