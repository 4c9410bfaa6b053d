"""Job outcomes and recovery with real processes: gunicorn, Celery worker, the sweeper, Redis, SQLite.

No mocks: faults are real (a poison file, a missing upload, a time limit, Redis stopped, the
database file moved away, a message deleted from Redis, a worker SIGKILLed mid-task).
"""
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis as redis_client
import requests
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.support import stack
from tests.support.celery import total
from tests.support.csvdata import poison_csv

FIXTURES = Path(__file__).parent.parent / "fixtures"
pytestmark = pytest.mark.integration


# --- helpers -------------------------------------------------------------------------------------

@pytest.fixture
def env(app_env, metrics_dir):
    """Environment of workers and the sweeper: they share one metrics folder, as in ops/Procfile."""
    return {**app_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}


def _metrics(path: Path) -> dict:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    return {(s.name, frozenset(s.labels.items())): s.value for family in registry.collect() for s in family.samples}


def _value(path: Path, metric: str, **labels) -> float:
    return total(_metrics(path), metric, **labels)


def _sweeper(env, var_dir, procs, *args, name="sweeper") -> stack.Proc:
    proc = stack.Proc(name, [sys.executable, "manage.py", "jobs_sweep", "--loop", "--interval", "0.3",
                             "--max-backoff", "1", *args], env, var_dir)
    procs.append(proc)
    return proc


def _worker(env, var_dir, procs, name="w1", **overrides) -> stack.Proc:
    proc = stack.start_celery_worker({**env, **overrides}, var_dir, name=name)
    procs.append(proc)
    return proc


def _web(env, var_dir, procs) -> str:
    """A web tier with the given environment: time limits travel in the message, set by the publisher."""
    proc, url = stack.start_gunicorn({k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}, var_dir)
    procs.append(proc)
    return url


def _upload(web, name="weather.csv", data=None):
    data = data if data is not None else (FIXTURES / name).read_bytes()
    return requests.post(f"{web}/api/imports/", files={"file": (name, data, "text/csv")}, timeout=30)


def _row(var_dir, job_id):
    with sqlite3.connect(var_dir / "db.sqlite3", timeout=30) as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM jobs_job WHERE id = ?", (job_id.replace("-", ""),)).fetchone()


def _wait_row(var_dir, job_id, states, timeout=60):
    def done():
        row = _row(var_dir, job_id)
        return row if row["state"] in states else None
    return stack.wait_for(done, timeout, f"job {job_id} to reach {states}", interval=0.1)


def _slow_csv() -> bytes:
    """About 9.5 MB of rows: a few seconds of summarising, under the 10 MiB upload limit."""
    lines = ["id,value,label,note"]
    size, i = 0, 0
    while size < 9_500_000:
        line = f"{i},{i * 0.37:.4f},label{i % 97},note"
        lines.append(line)
        size += len(line) + 1
        i += 1
    return ("\n".join(lines) + "\n").encode()


# --- a job's outcome is its task's outcome -----------------------------------------------------------

def test_poison_upload_ends_its_task_in_failure_counted_as_job_input_invalid(web, env, var_dir, procs, metrics_dir):
    worker = _worker(env, var_dir, procs)
    response = _upload(web, "poison.csv", poison_csv())
    assert response.status_code == 202  # passes the request's cheap check
    job_id = response.json()["id"]
    row = _wait_row(var_dir, job_id, {"succeeded", "failed"})
    assert row["state"] == "failed" and "fields, the header has 3" in row["error"]
    stack.wait_for(lambda: _value(metrics_dir, "celery_task_failed_total", name="jobs.process_import") >= 1,
                   20, "the failure to be counted")
    assert _value(metrics_dir, "celery_task_failed_total", name="jobs.process_import",
                  exception="JobInputInvalid") == 1
    assert _value(metrics_dir, "celery_task_succeeded_total", name="jobs.process_import") == 0
    assert _value(metrics_dir, "jobs_finished_total", kind="import", state="failed") == 1
    assert (var_dir / "media" / "uploads" / f"{job_id}.csv").exists()  # kept for a re-run
    assert "Traceback" not in worker.log()  # an expected failure (Task.throws): one line, no traceback


def test_exhausted_retries_end_the_task_in_failure_counted_as_job_retries_exhausted(web, env, var_dir, procs,
                                                                                 metrics_dir):
    job_id = _upload(web).json()["id"]  # no worker yet: the message waits in Redis
    upload = var_dir / "media" / "uploads" / f"{job_id}.csv"
    upload.unlink()  # storage "not ready" for good
    _worker(env, var_dir, procs, JOBS_MAX_RETRIES="2", JOBS_RETRY_BACKOFF_SECONDS="0.2")
    row = _wait_row(var_dir, job_id, {"succeeded", "failed"})
    assert row["state"] == "failed" and "gave up after 3 attempts" in row["error"] and row["attempts"] == 3
    stack.wait_for(lambda: _value(metrics_dir, "celery_task_failed_total", name="jobs.process_import") >= 1,
                   20, "the failure to be counted")
    assert _value(metrics_dir, "celery_task_failed_total", exception="JobRetriesExhausted") == 1
    assert _value(metrics_dir, "celery_task_retried_total", name="jobs.process_import") == 2
    assert _value(metrics_dir, "jobs_finished_total", kind="import", state="failed") == 1


def test_a_soft_time_limit_is_one_failure_counted_as_job_time_limit_exceeded(env, var_dir, procs, metrics_dir):
    env = {**env, "JOBS_SOFT_TIME_LIMIT_SECONDS": "1", "JOBS_TIME_LIMIT_SECONDS": "5"}
    web = _web(env, var_dir, procs)
    # One pool process, warmed by a quick job first. On one fresh-machine run the slow job
    # succeeded past its 1 s limit. The likely cause: the soft-limit timer starts when the pool
    # process takes the task, and a cold process's first task spends its first moments in the
    # task_prerun receivers (first imports, slot files). A SoftTimeLimitExceeded raised there is
    # caught and logged by Celery's signal dispatch (celery.utils.dispatch.signal.Signal.send), and
    # the task then runs to success.
    procs.append(stack.start_celery_worker(env, var_dir, name="w1", concurrency=1))
    warm_id = _upload(web).json()["id"]
    assert _wait_row(var_dir, warm_id, {"succeeded", "failed"})["state"] == "succeeded"
    job_id = _upload(web, "slow.csv", _slow_csv()).json()["id"]
    row = _wait_row(var_dir, job_id, {"succeeded", "failed"})
    assert row["state"] == "failed" and "time limit exceeded (1 s)" in row["error"]
    stack.wait_for(lambda: _value(metrics_dir, "celery_task_failed_total", name="jobs.process_import") >= 1,
                   20, "the failure to be counted")
    time.sleep(1)  # nothing else may arrive
    assert _value(metrics_dir, "celery_task_failed_total", name="jobs.process_import") == 1
    assert _value(metrics_dir, "celery_task_failed_total", exception="JobTimeLimitExceeded") == 1
    assert _value(metrics_dir, "celery_task_time_limit_exceeded_total", limit="soft") == 1
    assert _value(metrics_dir, "celery_task_time_limit_exceeded_total", limit="hard") == 0


# --- the sweeper ------------------------------------------------------------------------------------------

def _move_database(var_dir: Path, away: bool) -> None:
    for suffix in ("", "-wal", "-shm"):
        live, kept = var_dir / f"db.sqlite3{suffix}", var_dir / f"kept.sqlite3{suffix}"
        if away:
            if live.exists():
                os.replace(live, kept)
        else:
            live.unlink(missing_ok=True)  # the empty database the sweeper's reconnect created
            if kept.exists():
                os.replace(kept, live)


def test_sweeper_survives_broker_and_database_errors_and_keeps_its_heartbeat(web, env, redis, var_dir, procs,
                                                                            metrics_dir):
    _worker(env, var_dir, procs)
    sweeper = _sweeper(env, var_dir, procs)
    beat = lambda: _value(metrics_dir, "jobs_sweeper_last_success_timestamp_seconds")  # noqa: E731
    stack.wait_for(lambda: beat() > 0, 30, "a first completed sweep")

    redis["proc"].stop()  # broker down: the sweeps still complete, the outbox grows
    response = _upload(web)
    assert response.status_code == 202
    job_id = response.json()["id"]
    accepted = time.time()
    stack.wait_for(lambda: _value(metrics_dir, "jobs_outbox_oldest_age_seconds") >= 2, 30, "the outbox to age")
    assert beat() >= accepted  # heartbeat kept during the broker outage
    assert _row(var_dir, job_id)["enqueued_at"] is None

    _move_database(var_dir, away=True)  # the database refuses queries (no such table)
    try:
        stack.wait_for(lambda: _value(metrics_dir, "jobs_sweeper_errors_total") >= 2, 30, "failed sweeps counted")
        stalled = beat()
        time.sleep(2)
        assert beat() == stalled  # no completed sweep while the database is down
        assert sweeper.alive()
    finally:
        _move_database(var_dir, away=False)
    stack.wait_for(lambda: beat() > stalled, 30, "sweeps completing again")
    assert "sweep failed" in sweeper.log()

    new_redis, _ = stack.start_redis(var_dir, port=redis["port"])
    procs.append(new_redis)
    row = _wait_row(var_dir, job_id, {"succeeded", "failed"}, timeout=60)
    assert row["state"] == "succeeded" and row["attempts"] == 1
    assert _value(metrics_dir, "jobs_republished_total", reason="outbox") == 1
    stack.wait_for(lambda: _value(metrics_dir, "jobs_outbox_oldest_age_seconds") == 0, 30, "the outbox drained")
    assert sweeper.alive()


def test_a_lost_message_is_republished_and_the_job_completes(web, env, redis, var_dir, procs, metrics_dir):
    job_id = _upload(web).json()["id"]  # published; no worker consumes yet
    broker = redis_client.Redis(host=stack.HOST, port=redis["port"])
    assert broker.llen("imports") == 1
    broker.delete("imports")  # the message is lost (as an un-fsynced write on a Redis crash)
    _worker(env, var_dir, procs)
    sweeper = _sweeper({**env, "JOBS_REQUEUE_LOST_AFTER_SECONDS": "3"}, var_dir, procs)
    row = _wait_row(var_dir, job_id, {"succeeded", "failed"}, timeout=60)
    assert row["state"] == "succeeded" and row["attempts"] == 1
    assert _value(metrics_dir, "jobs_republished_total", reason="lost_message") == 1
    assert "re-published (lost_message)" in sweeper.log()


def test_a_job_left_running_by_a_sigkilled_worker_is_redelivered_and_succeeds(env, var_dir, procs, metrics_dir):
    short = {"CELERY_VISIBILITY_TIMEOUT_SECONDS": "60", "JOBS_SOFT_TIME_LIMIT_SECONDS": "20",
             "JOBS_TIME_LIMIT_SECONDS": "30", "JOBS_DEADLINE_RUNNING_SECONDS": "40"}
    env = {**env, **short}
    web = _web(env, var_dir, procs)
    worker = _worker(env, var_dir, procs)
    sweeper = _sweeper(env, var_dir, procs)  # must not fail the job before the redelivery
    job_id = _upload(web, "slow.csv", _slow_csv()).json()["id"]
    _wait_row(var_dir, job_id, {"running"}, timeout=30)
    # A duplicate message while it runs on a live worker: the second pool process skips it.
    code = ("import django; django.setup(); from app import celery_app; from app.jobs.kinds import IMPORT; "
            f"celery_app.send_task(IMPORT.task_name, args=['{job_id}'], queue=IMPORT.queue)")
    subprocess.run([sys.executable, "-c", code], env={**env, "DJANGO_SETTINGS_MODULE": "app.settings"},
                   cwd=stack.ROOT, check=True, timeout=60)
    stack.wait_for(lambda: "duplicate message" in worker.log(), 20, "the duplicate to be skipped")
    assert _row(var_dir, job_id)["state"] == "running"
    started = time.time()
    os.killpg(worker.pid, signal.SIGKILL)  # the worker host dies mid-task: main process and children
    time.sleep(max(0.0, 62 - (time.time() - started)))  # Redis hands it out after the visibility timeout
    assert _row(var_dir, job_id)["state"] == "running"  # not failed early by the sweeper
    _worker(env, var_dir, procs, name="w2")
    row = _wait_row(var_dir, job_id, {"succeeded", "failed"}, timeout=120)
    assert row["state"] == "succeeded" and row["attempts"] == 2, dict(row)
    assert "left running by a dead worker" in (var_dir / "celery-w2.log").read_text()
    assert _value(metrics_dir, "jobs_finished_total", kind="import", state="succeeded") == 1
    assert _value(metrics_dir, "jobs_finished_total", kind="import", state="failed") == 0
    assert sweeper.alive()


def test_request_and_sweeper_racing_publish_each_job_once(web, env, var_dir, procs, metrics_dir):
    _worker(env, var_dir, procs, JOBS_RATE_LIMIT="")
    _sweeper(env, var_dir, procs, "--min-age", "0", "--interval", "0.02")  # as eager as it can be
    ids, lock = [], threading.Lock()

    def client():
        for _ in range(15):
            response = _upload(web)
            assert response.status_code == 202
            with lock:
                ids.append(response.json()["id"])

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 60
    for job_id in ids:
        row = _wait_row(var_dir, job_id, {"succeeded", "failed"}, timeout=120)
        assert row["state"] == "succeeded" and row["attempts"] == 1 and row["enqueue_attempts"] == 1, dict(row)
    stack.wait_for(lambda: _value(metrics_dir, "celery_task_succeeded_total", name="jobs.process_import") >= 60,
                   30, "every execution counted")
    assert _value(metrics_dir, "celery_task_received_total", name="jobs.process_import") == 60
    published_by_sweeper = _value(metrics_dir, "jobs_republished_total", reason="outbox")
    print(f"the sweeper published {published_by_sweeper:.0f} of 60 jobs, the requests the rest")


def test_no_copies_pile_up_in_a_queue_that_nobody_consumes(web, env, redis, var_dir, procs, metrics_dir):
    job_id = _upload(web).json()["id"]  # published; the workers are down
    broker = redis_client.Redis(host=stack.HOST, port=redis["port"])
    sweeper = _sweeper({**env, "JOBS_REQUEUE_LOST_AFTER_SECONDS": "1"}, var_dir, procs)
    stack.wait_for(lambda: _value(metrics_dir, "jobs_sweeper_last_success_timestamp_seconds") > 0, 30, "a sweep")
    time.sleep(5)  # five times the lost-after age, ~15 sweeps
    assert broker.llen("imports") == 1  # the message is waiting, not lost: no copies
    assert _value(metrics_dir, "jobs_republished_total", reason="lost_message") == 0
    _worker(env, var_dir, procs)
    row = _wait_row(var_dir, job_id, {"succeeded", "failed"}, timeout=60)
    assert row["state"] == "succeeded" and row["attempts"] == 1 and row["enqueue_attempts"] == 1
    assert sweeper.alive()
