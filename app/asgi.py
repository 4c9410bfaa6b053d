"""ASGI entry point (gunicorn with the uvicorn worker), behind the request guard (app/api/guard.py).

The guard applies the WSGI tier's limits (header size and count, CL+TE, the early 413) before
Django's ASGIHandler, which reads the whole body before any middleware runs.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
django_application = get_asgi_application()

from app.api import guard, uploads  # noqa: E402 (after Django is set up)
from django_celery_ops import loop_lag  # noqa: E402

uploads.clean_spool()  # what a killed worker left behind
application = loop_lag.instrument(guard.asgi(django_application))
