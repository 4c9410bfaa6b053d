"""2,000 uploads through a real stack, with the sweeper killed and Redis stopped and restarted mid-run.

    .venv/bin/python bench/jobs/outage_run.py [--uploads 2000] [--clients 6] [--rate 40]

Starts on free loopback ports: Redis (appendonly, fsync always), gunicorn (WSGI, 3 sync
workers), one Celery worker (prefork, 2 processes; restarted if it dies, as supervisord does in
the stack) and the sweeper (`jobs_sweep --loop`), with production settings on SQLite. The rate limit is off for the run (JOBS_RATE_LIMIT empty: the
default 60/m would stretch 2,000 jobs over 33 minutes) and JOBS_REQUEUE_LOST_AFTER_SECONDS is
60 (default 600), so a message lost in the outage is recovered within the run.

Clients upload at a steady --rate (uploads per second, all clients together). Timeline, by
uploads answered: at 20 % the sweeper is SIGKILLed; at 30 % Redis is stopped (SIGTERM);
--outage-seconds (15) later Redis starts again on the same port and data; at 75 % a new
sweeper starts. Clients keep uploading throughout. Then the run waits until every accepted job is
final and checks: every accepted job succeeded with exactly one result file, the job
metrics (web + Celery folders) equal the database, and task executions beyond jobs, which
are explained by re-publishes (counted per reason). Prints a Markdown report
(bench/jobs/RESULTS.md records one).
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import requests  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402

from tests.support import stack  # noqa: E402
from tests.support.celery import total  # noqa: E402

CSV = (ROOT / "tests" / "fixtures" / "weather.csv").read_bytes()


def _metrics(*paths: Path) -> dict:
    samples: Counter = Counter()
    for path in paths:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(path))
        for family in registry.collect():
            for s in family.samples:
                samples[(s.name, frozenset(s.labels.items()))] += s.value
    return samples


def _db(var: Path):
    db = sqlite3.connect(var / "db.sqlite3", timeout=60)
    db.row_factory = sqlite3.Row
    return db


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--outage-seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=float, default=40.0, help="uploads per second, all clients together")
    args = parser.parse_args()

    var = Path(tempfile.mkdtemp(prefix="jobs-outage-"))
    (var / "run").mkdir()
    celery_dir, web_dir = var / "metrics" / "celery", var / "metrics" / "web"
    celery_dir.mkdir(parents=True)
    web_dir.mkdir(parents=True)
    procs: list[stack.Proc] = []
    log = []

    def note(text: str) -> None:
        line = f"t={time.monotonic() - t0:6.1f}s {text}"
        log.append(line)
        print(line, flush=True)

    t0 = time.monotonic()
    try:
        redis_proc, redis_port = stack.start_redis(var)
        env = stack.app_env(var, f"redis://{stack.HOST}:{redis_port}/0", JOBS_RATE_LIMIT="",
                            JOBS_REQUEUE_LOST_AFTER_SECONDS="60", GUNICORN_WORKERS="3")
        stack.migrate(env)
        web_proc, web = stack.start_gunicorn({**env, "PROMETHEUS_MULTIPROC_DIR": str(web_dir)}, var)
        procs.append(web_proc)
        celery_env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(celery_dir)}
        workers = [stack.start_celery_worker(celery_env, var, name="w1")]
        procs.append(workers[0])
        stopping = threading.Event()

        def supervise():
            """Restart a worker that died, as supervisord's autorestart does in the stack."""
            while not stopping.wait(1.0):
                if not workers[-1].alive():
                    note(f"worker {workers[-1].name} exited (rc {workers[-1].popen.returncode}); restarting it")
                    workers.append(stack.start_celery_worker(celery_env, var, name=f"w{len(workers) + 1}"))
                    procs.append(workers[-1])

        threading.Thread(target=supervise, daemon=True).start()
        sweep_args = [sys.executable, "manage.py", "jobs_sweep", "--loop", "--interval", "1"]
        sweeper = stack.Proc("sweeper-1", sweep_args, celery_env, var)
        procs.append(sweeper)
        note("stack up")

        answers: Counter = Counter()
        accepted: list[str] = []
        lock = threading.Lock()
        counter = iter(range(args.uploads))
        done = [0]

        def client():
            session = requests.Session()
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                time.sleep(max(0.0, started + n / args.rate - time.monotonic()))
                try:
                    response = session.post(f"{web}/api/imports/", timeout=120,
                                            files={"file": (f"u{n}.csv", CSV, "text/csv")})
                    status = response.status_code
                except requests.RequestException as exc:
                    status = type(exc).__name__
                with lock:
                    answers[status] += 1
                    if status == 202:
                        accepted.append(response.json()["id"])
                    done[0] += 1

        started = time.monotonic()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
        for thread in threads:
            thread.start()

        def wait_done(fraction: float) -> None:
            while done[0] < args.uploads * fraction:
                time.sleep(0.05)

        wait_done(0.20)
        os.killpg(sweeper.pid, signal.SIGKILL)
        note(f"sweeper SIGKILLed after {done[0]} uploads")
        wait_done(0.30)
        redis_proc.stop()
        note(f"Redis stopped after {done[0]} uploads")
        time.sleep(args.outage_seconds)
        redis_proc, _ = stack.start_redis(var, port=redis_port)
        note(f"Redis started again after {done[0]} uploads")
        wait_done(0.75)
        sweeper = stack.Proc("sweeper-2", sweep_args, celery_env, var)
        procs.append(sweeper)
        note(f"sweeper started again after {done[0]} uploads")
        for thread in threads:
            thread.join()
        upload_seconds = time.monotonic() - started
        note(f"uploads answered: {dict(answers)}")

        def all_final():
            with _db(var) as db:
                left = db.execute("SELECT COUNT(*) FROM jobs_job WHERE state NOT IN ('succeeded', 'failed')")
                return left.fetchone()[0] == 0
        stack.wait_for(all_final, 900, "every job final", interval=1)
        drain_seconds = time.monotonic() - started
        stopping.set()
        note("every job final")
        time.sleep(3)  # the last counters land in their files

        with _db(var) as db:
            rows = {r["id"]: r for r in db.execute("SELECT * FROM jobs_job")}
        by_state = Counter(r["state"] for r in rows.values())
        accepted_hex = {a.replace("-", "") for a in accepted}
        results = var / "media" / "results"
        files = sorted(p.name for p in results.iterdir())
        not_succeeded = [a for a in accepted_hex if rows[a]["state"] != "succeeded"]
        missing = [a for a in accepted if f"{a}.json" not in files]
        stray = [f for f in files if f.startswith(".")]
        s = _metrics(web_dir, celery_dir)
        finished = {st: total(s, "jobs_finished_total", kind="import", state=st) for st in ("succeeded", "failed")}
        executions = total(s, "celery_task_started_total", name="jobs.process_import")
        received = total(s, "celery_task_received_total", name="jobs.process_import")
        republished = {r: total(s, "jobs_republished_total", reason=r) for r in ("outbox", "lost_message", "retry_due")}
        attempts = Counter(r["attempts"] for r in rows.values())
        enqueue_attempts = Counter(r["enqueue_attempts"] for r in rows.values())
        worker_logs = "".join(w.log() for w in workers)
        noop = worker_logs.count("is finished or unknown; nothing to do")
        duplicates_skipped = worker_logs.count("duplicate message")
        extra = executions - len(rows)
        sweeper_errors = total(s, "jobs_sweeper_errors_total")
        checks = {
            "every accepted job succeeded": not not_succeeded and by_state["failed"] == 0,
            "one result file per accepted job, no strays": not missing and not stray and len(files) == len(accepted),
            "jobs_finished_total equals the database": finished == {"succeeded": by_state["succeeded"],
                                                                    "failed": by_state["failed"]},
            "every job ran exactly once (attempts = 1)": set(attempts) == {1},
            "executions beyond jobs explained by re-publishes": extra <= sum(republished.values()),
        }
        print()
        print("## Outage run")
        print()
        print(f"Machine: {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
              f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.")
        print(f"Uploads {args.uploads} from {args.clients} clients; answers {dict(answers)}; "
              f"accepted {len(accepted)}; jobs in the database {len(rows)} ({dict(by_state)}).")
        print(f"Uploads answered in {upload_seconds:.1f} s; every job final {drain_seconds:.1f} s after the start.")
        print()
        print("Timeline:")
        for line in log:
            print(f"- {line}")
        print()
        print("| check | result |")
        print("|---|---|")
        for name, ok in checks.items():
            print(f"| {name} | {'PASS' if ok else 'FAIL'} |")
        print()
        print(f"- jobs_finished_total{{kind=import}}: {finished}; database: succeeded {by_state['succeeded']}, "
              f"failed {by_state['failed']}")
        print(f"- task executions (celery_task_started_total): {executions:.0f}, received {received:.0f}, "
              f"for {len(rows)} jobs: **{extra:.0f} beyond jobs**; of all executions {noop} found the job "
              f"finished and {duplicates_skipped} found it running elsewhere (both no-ops)")
        print(f"- re-published by the sweeper: {republished}; publishes per job (enqueue_attempts): "
              f"{dict(sorted(enqueue_attempts.items()))}; attempts per job: {dict(sorted(attempts.items()))}")
        print(f"- sweeper errors counted: {sweeper_errors:.0f}; worker processes started: {len(workers)} "
              f"(a dead worker is restarted, as supervisord does)")
        if not_succeeded or missing or stray:
            print(f"- not succeeded: {not_succeeded[:10]}; missing results: {missing[:10]}; stray: {stray[:10]}")
        return 0 if all(checks.values()) else 1
    finally:
        for proc in reversed(procs):
            proc.stop()
        try:
            redis_proc.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        print(f"\n(state kept in {var})")


if __name__ == "__main__":
    sys.exit(main())
