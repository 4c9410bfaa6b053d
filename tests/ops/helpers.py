"""Paths and small helpers shared by the monitoring tests (tests/ops)."""

import subprocess
from pathlib import Path

from tests.ops.procs import ALERTMANAGER_DIR, PROMETHEUS_DIR, REPO

HERE = Path(__file__).resolve().parent
RULES_DIR = PROMETHEUS_DIR / "rules"
PROMTOOL_TESTS_DIR = PROMETHEUS_DIR / "tests"
ALERTMANAGER_CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
MONITORING_CONFIG = REPO / "ops" / "monitoring.yml"  # this project's config of the monitoring generator


def project_config():
    """Return this project's monitoring config (ops/monitoring.yml merged over the generator's defaults)."""
    from django_celery_ops.monitoring import config

    return config.load(MONITORING_CONFIG)


def components():
    """Return the components this project generates rules for, in order (from its config)."""
    return tuple(project_config()["components"])


def run(*cmd, env=None, cwd=REPO):
    """Run a command; return the CompletedProcess with text output (never raises on failure)."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
                          check=False)
