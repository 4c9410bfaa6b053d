"""Bench-only ASGI entry point of the bare layer: app/asgi.py without the library's loop-lag instrument.

The app's request guard (app/api/guard.py: the tier's limits, not instrumentation) stays, so the
ASGI bare and metrics layers differ by the instrumentation only. Settings: bench.web.settings_bare.
"""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.web.settings_bare")
django_application = get_asgi_application()

from app.api import guard  # noqa: E402 (after Django is set up)

application = guard.asgi(django_application)
