"""Fixtures of the jobs unit tests: media in a temporary folder, Celery run in-process."""
import pytest

from app import celery_app


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def eager(monkeypatch):
    """Publishing runs the task at once, in this process (a broker that always accepts).

    Services send tasks by name (`send_task`), which Celery's task_always_eager does not
    cover; this broker looks the name up in the app's registry, as a worker would. It
    returns the list of (task name, queue) sent.
    """
    from app.jobs import tasks  # noqa: F401  (registers the jobs tasks, as a worker's autodiscovery does)

    sent = []

    def send_task(name, args=None, kwargs=None, queue=None, **options):
        sent.append((name, queue))
        return celery_app.tasks[name].apply(args=args, kwargs=kwargs)

    monkeypatch.setattr(celery_app, "send_task", send_task)
    return sent
