# Multiprocess metric storage must be chosen before any metric exists (bounded, slot-named files).
from app.observability import multiprocess

multiprocess.install()

# Load the Celery app with Django so that @shared_task binds to it.
from app.celery import app as celery_app  # noqa: E402

__all__ = ["celery_app"]
