"""Settings of the test process: the app's settings, read with a test environment.

pytest-django imports this before any conftest, so the environment is set here.
"""
import os
import tempfile

os.environ["DJANGO_ENV"] = "test"
os.environ["OPS_VAR_DIR"] = tempfile.mkdtemp(prefix="ops-test-var-")
os.environ.pop("DATABASE_URL", None)
os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:1/0"  # nothing listens: unit tests never reach a broker

from app.settings import *
