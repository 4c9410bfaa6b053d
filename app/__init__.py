# The library chooses the multiprocess metric storage on import, before any metric exists.
import django_celery_ops  # noqa: F401

# Load the Celery app with Django so that @shared_task binds to it.
from app.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
