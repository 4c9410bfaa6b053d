"""The JOBS_* settings fail at start-up, naming the setting, when their value is wrong."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(tmp_path, **env) -> subprocess.CompletedProcess:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_ENV": "development", "OPS_VAR_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", "import app.settings"], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("env, named", [
    ({"JOBS_MAX_COLUMNS": "0"}, "JOBS_MAX_COLUMNS=0 must be at least 1"),
    ({"JOBS_MAX_LINES": "many"}, "JOBS_MAX_LINES='many' is not an integer"),
    ({"JOBS_SUMMARY_MAX_BYTES": "100"}, "JOBS_SUMMARY_MAX_BYTES=100 must be at least 1024"),
    ({"JOBS_REQUEUE_LOST_AFTER_SECONDS": "0"}, "JOBS_REQUEUE_LOST_AFTER_SECONDS=0 must be at least 1"),
    ({"JOBS_DEADLINE_QUEUED_SECONDS": "x"}, "JOBS_DEADLINE_QUEUED_SECONDS='x' is not an integer"),
    ({"JOBS_DEADLINE_RUNNING_SECONDS": "300"}, "JOBS_DEADLINE_RUNNING_SECONDS=300 must be greater than"),
    ({"JOBS_DEADLINE_RETRYING_SECONDS": "100"}, "JOBS_DEADLINE_RETRYING_SECONDS=100 must be greater than"),
    ({"CELERY_VISIBILITY_TIMEOUT_SECONDS": "300"}, "CELERY_VISIBILITY_TIMEOUT_SECONDS=300 must be greater than"),
])
def test_a_wrong_jobs_setting_fails_at_start_up_naming_it(tmp_path, env, named):
    done = _load(tmp_path, **env)
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and named in done.stderr, done.stderr[-2000:]


def test_the_defaults_load(tmp_path):
    done = _load(tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
