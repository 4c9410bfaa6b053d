"""Real Redis, Celery workers and the exporter for the Celery observability tests."""
import pytest

from tests.support import stack


@pytest.fixture
def var_dir(tmp_path):
    path = tmp_path / "var"
    (path / "run").mkdir(parents=True)
    return path


@pytest.fixture
def procs():
    """Collects started processes and stops them all at the end of the test."""
    started: list[stack.Proc] = []
    yield started
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def redis(var_dir, procs):
    proc, port = stack.start_redis(var_dir)
    procs.append(proc)
    return {"proc": proc, "port": port, "url": f"redis://{stack.HOST}:{port}/0"}


@pytest.fixture
def metrics_dir(var_dir):
    path = var_dir / "metrics" / "celery"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def celery_env(var_dir, redis, metrics_dir):
    """Environment of workers, producers and the exporter: one broker, one metrics directory."""
    return stack.app_env(var_dir, redis["url"], PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
