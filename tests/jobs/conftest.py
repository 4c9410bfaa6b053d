"""Fixtures of the jobs unit tests: media in a temporary folder, Celery run in-process."""
import pytest

from app import celery_app


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def eager():
    """Publishing runs the task at once, in this process (a broker that always accepts)."""
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False
