"""Shared fixtures: a var folder, the Celery metrics folder, process cleanup, Redis, and the committed alert rules."""
import pytest
import yaml

from tests.support import stack


@pytest.fixture
def var_dir(tmp_path):
    path = tmp_path / "var"
    (path / "run").mkdir(parents=True)
    return path


@pytest.fixture
def metrics_dir(var_dir):
    """The Celery multiprocess metrics folder that workers, the sweeper and the exporter share."""
    path = var_dir / "metrics" / "celery"
    path.mkdir(parents=True)
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


@pytest.fixture(scope="session")
def alert_rules():
    """Every alert rule of the committed rule files (an alert may have one rule per severity)."""
    return [
        rule
        for path in sorted((stack.ROOT / "ops/prometheus/rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
