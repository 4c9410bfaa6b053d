"""WSGI entry point (gunicorn sync workers), behind the request guard (app/api/guard.py)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
django_application = get_wsgi_application()

from app.api import guard, uploads  # noqa: E402 (after Django is set up)

uploads.clean_spool()  # what a killed worker left behind
application = guard.wsgi(django_application)
