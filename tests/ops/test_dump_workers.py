"""`make dump-workers` (scripts/dump-workers.sh): a py-spy dump of every gunicorn and Celery process,
naming what each one is stuck in, on a real gunicorn tier and a real Celery worker."""
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from tests.support import stack, web

pytestmark = pytest.mark.integration

SCRIPT = stack.ROOT / "scripts" / "dump-workers.sh"


def _run(var_dir):
    return subprocess.run([str(SCRIPT)], env={**os.environ, "OPS_VAR_DIR": str(var_dir)}, capture_output=True,
                          text=True, timeout=120, cwd=stack.ROOT)


def test_without_a_running_stack_it_says_so_and_fails(var_dir):
    (var_dir / "run" / "gunicorn-web.pid").write_text("999999\n")  # a stale pid file
    result = _run(var_dir)
    assert result.returncode == 1
    assert "stale pid file" in result.stderr and "no gunicorn or Celery process found" in result.stderr


def test_the_dump_names_the_function_each_busy_worker_is_stuck_in(var_dir, procs, redis):
    tier = web.start_tier(procs, var_dir, workers=2, GUNICORN_TIMEOUT="30", CELERY_BROKER_URL=redis["url"])
    celery_env = stack.app_env(var_dir, redis["url"])
    procs.append(stack.start_celery_worker(celery_env, var_dir, name="w1", concurrency=1, queues="default",
                                           extra=["--pidfile", str(var_dir / "run" / "celery-w1.pid")]))
    assert requests.post(f"{tier.url}/drills/tasks/?kind=busy&seconds=6", timeout=10).status_code == 202
    def slow_request():
        try:
            requests.get(f"{tier.url}/drills/slow-view/?seconds=6", timeout=30)
        except requests.RequestException:  # the tier is killed at the end, mid-request
            pass

    threading.Thread(target=slow_request, daemon=True).start()
    stuck = tier.worker_pids()
    stack.wait_for(lambda: "Task drills.busy" in procs[-1].log() and "received" in procs[-1].log(), 10,
                   "the busy task received")

    def dumped():
        result = _run(var_dir)
        assert result.returncode == 0, result.stdout + result.stderr
        return result if "slow_view" in result.stdout and " busy (" in result.stdout else None

    result = stack.wait_for(dumped, 15, "a dump naming slow_view and busy", interval=0.5)
    lines = result.stdout.splitlines()
    folder = lines[0].split(" -> ", 1)[1]
    files = sorted(os.listdir(folder))
    # the gunicorn master, its 2 workers, the Celery main process and its 1 pool child
    assert len(files) == 5, files
    assert {f.rsplit("-", 1)[0] for f in files} == {"gunicorn-web-master", "gunicorn-web-worker", "celery-w1-master",
                                                  "celery-w1-worker"}
    assert {int(f.rsplit("-", 1)[1][:-4]) for f in files if f.startswith("gunicorn-web-worker")} == stuck
    [slow] = [line for line in lines if "slow_view" in line]
    assert "gunicorn-web" in slow and "worker" in slow and re.search(r"\| slow_view \(app/drills/views\.py:\d+\)", slow)
    [busy] = [line for line in lines if " busy (" in line]
    assert "celery-w1" in busy and "worker" in busy and "app/drills/tasks.py" in busy
    text = (Path(folder) / next(f for f in files if f.startswith("celery-w1-worker"))).read_text()
    assert "busy (app/drills/tasks.py:" in text and "Process " in text


@pytest.fixture
def procs(procs):
    """The stuck ones are killed at the end, not drained: a graceful stop would wait for the sleeps."""
    yield procs
    for proc in procs:
        if proc.alive():
            os.killpg(proc.pid, signal.SIGKILL)
