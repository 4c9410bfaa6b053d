"""A real mini stack for integration tests: Redis, gunicorn and a Celery worker on free ports."""
import pytest

from tests.support import stack


@pytest.fixture
def app_env(var_dir, redis):
    env = stack.app_env(var_dir, redis["url"], JOBS_RETRY_BACKOFF_SECONDS="0.5", GUNICORN_WORKERS="2")
    stack.migrate(env)
    return env


@pytest.fixture
def web(app_env, var_dir, procs):
    proc, url = stack.start_gunicorn(app_env, var_dir)
    procs.append(proc)
    return url


@pytest.fixture
def worker(app_env, var_dir, procs):
    proc = stack.start_celery_worker(app_env, var_dir)
    procs.append(proc)
    return proc
