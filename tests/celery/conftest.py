"""Real Redis, Celery workers, the exporter and Prometheus for the Celery observability tests."""
from __future__ import annotations

import pytest

from tests.support import stack


@pytest.fixture
def celery_env(var_dir, redis, metrics_dir):
    """Environment of workers, producers and the exporter: one broker, one metrics directory."""
    return stack.app_env(var_dir, redis["url"], PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
