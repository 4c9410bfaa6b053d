"""ASGI entry point (gunicorn with the uvicorn worker)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
django_application = get_asgi_application()

from app.observability import loop_lag  # noqa: E402 (after Django is set up)

application = loop_lag.instrument(django_application)
