"""Celery instrumentation benchmark: plain vs instrumented workers in the same run.

    .venv/bin/python -m bench.celery.bench [--tasks 6000] [--rounds 2]     (from the repository root)

For each round and mode (plain = OBS_CELERY_METRICS=0, instrumented = the default) it fills
the default queue with N trivial tasks (drills.ok), starts a worker (prefork, 2 processes,
-E, acks_late, prefetch 1: the stack's settings) and times the drain: from the first message
taken to the queue and kombu's `unacked` hash both empty. The exporter runs beside the
instrumented worker, scraped every second; its CPU time and RSS come from /proc. At the end
the exporter's counters must equal the tasks published in instrumented rounds. A last part
times the signal receivers in-process (the per-task instrumentation cost in microseconds).
Prints a Markdown report (bench/celery/RESULTS.md records one).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
import requests

from tests.support import stack
from tests.support.celery import produce, scrape, start_exporter, total

ROOT = Path(__file__).resolve().parents[2]

HZ = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ  # utime + stime


def _tree_cpu_seconds(pid: int) -> float:
    """CPU of a process, its reaped children (cutime, cstime: recycled pool processes) and live children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = sum(int(f) for f in fields[11:15]) / HZ
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return own + sum(_cpu_seconds(int(c)) for c in children)


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _drain(client: redis.Redis, n: int, timeout: float = 300) -> float:
    """Seconds from the first message taken until the queue and the unacked hash are empty."""
    deadline = time.monotonic() + timeout
    while client.llen("default") >= n:
        if time.monotonic() > deadline:
            raise SystemExit("bench: the worker took no message")
        time.sleep(0.02)
    start = time.monotonic()
    while client.llen("default") or client.hlen("unacked"):
        if time.monotonic() > deadline:
            raise SystemExit("bench: the queue did not drain")
        time.sleep(0.02)
    return time.monotonic() - start


def _publish(env: dict, n: int) -> float:
    out = produce(env, "import time", "t = time.perf_counter()",
                  f"for _ in range({n}): tasks.ok.delay()", "print(time.perf_counter() - t)", timeout=300)
    return float(out.strip().splitlines()[-1])


def _scraper(url: str, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        try:
            requests.get(f"{url}/metrics", timeout=5)
        except requests.RequestException:
            pass


def _microbench(n: int = 20000) -> dict:
    """Per-task cost of the receivers (producer + main process + child), in-process, multiprocess mode."""
    code = f"""
import os, time, tempfile
os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp()
import app
from types import SimpleNamespace
from django_celery_ops import celery_metrics as m
req = SimpleNamespace(hostname="w1@bench", delivery_info={{"routing_key": "default"}}, eta=None,
                      published_at=time.time(), task_name="drills.ok")
task = SimpleNamespace(name="drills.ok", request=req)
headers = {{}}
def one(i):
    req.id = i
    m._on_before_publish(sender="drills.ok", headers=headers); headers.clear()
    m._on_after_publish(sender="drills.ok", routing_key="default")
    m._on_received(request=req)
    m._on_prerun(task_id=i, task=task)
    m._on_success(sender=task)
    m._on_postrun(task_id=i, task=task)
for i in range(1000): one(i)
t = time.perf_counter()
for i in range({n}): one(i)
print((time.perf_counter() - t) / {n} * 1e6)
"""
    env = {**os.environ, "DJANGO_ENV": "test"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return {"receivers_us_per_task": float(out.stdout.strip().splitlines()[-1])}


def run(n: int, rounds: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-celery-"))
    var = tmp / "var"
    (var / "run").mkdir(parents=True)
    procs: list[stack.Proc] = []
    results = {"plain": [], "instrumented": []}
    try:
        redis_proc, port = stack.start_redis(var)
        procs.append(redis_proc)
        url = f"redis://{stack.HOST}:{port}/0"
        client = redis.Redis(host=stack.HOST, port=port)
        metrics = var / "metrics"
        base = stack.app_env(var, url)
        envs = {"plain": {**base, "OBS_CELERY_METRICS": "0"},
                "instrumented": {**base, "PROMETHEUS_MULTIPROC_DIR": str(metrics)}}
        exporter, exp_url = start_exporter(envs["instrumented"], var, EXPORTER_POLL_SECONDS="5")
        procs.append(exporter)
        stop = threading.Event()
        threading.Thread(target=_scraper, args=(exp_url, stop), daemon=True).start()
        rss_start = _rss_mib(exporter.pid)
        for r in range(rounds):
            for mode in ("plain", "instrumented") if r % 2 == 0 else ("instrumented", "plain"):  # ABBA
                env = envs[mode]
                publish_s = _publish(env, n)
                cpu0 = _cpu_seconds(exporter.pid)
                worker = stack.start_celery_worker(env, var, name=f"{mode}{r}", queues="default",
                                                   concurrency=2)
                procs.append(worker)
                worker_cpu0 = _tree_cpu_seconds(worker.pid)
                drain_s = _drain(client, n)
                worker_cpu = _tree_cpu_seconds(worker.pid) - worker_cpu0
                cpu = _cpu_seconds(exporter.pid) - cpu0
                worker_rss = _rss_mib(worker.pid)
                worker.stop()
                results[mode].append({"publish_per_s": n / publish_s, "drain_per_s": n / drain_s,
                                      "exporter_cpu_s": cpu, "worker_main_rss_mib": worker_rss,
                                      "worker_cpu_us_per_task": worker_cpu / n * 1e6})
        time.sleep(2)
        s = scrape(exp_url)
        stop.set()
        expected = n * rounds
        counts = {c: total(s, f"celery_task_{c}_total", name="drills.ok")
                  for c in ("sent", "received", "started", "succeeded")}
        return {"n": n, "rounds": rounds, "results": results, "counts": counts, "expected": expected,
                "exporter_rss_mib": (rss_start, _rss_mib(exporter.pid)),
                "metric_files": len(list(metrics.glob("*.db")))}
    finally:
        for proc in reversed(procs):
            proc.stop()


def report(data: dict, micro: dict) -> str:
    r = data["results"]
    med = {m: {k: statistics.median(x[k] for x in r[m]) for k in r[m][0]} for m in r}
    ratio = med["instrumented"]["drain_per_s"] / med["plain"]["drain_per_s"]
    per_task_us = (1 / med["instrumented"]["drain_per_s"] - 1 / med["plain"]["drain_per_s"]) * 2 * 1e6
    exp_cpu = sum(x["exporter_cpu_s"] for x in r["instrumented"]) / (data["n"] * data["rounds"])
    cpu_cost = med["instrumented"]["worker_cpu_us_per_task"] - med["plain"]["worker_cpu_us_per_task"]
    exact = all(v == data["expected"] for v in data["counts"].values())
    lines = [
        f"Machine: {platform.node()} / {platform.platform()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"Tasks per mode and round: {data['n']}, rounds: {data['rounds']} (plain and instrumented alternate)",
        "",
        ("| mode | drain tasks/s (median) | worker CPU µs per task (median) | publish tasks/s (median) |"
         " worker main RSS MiB |"),
        "|---|---|---|---|---|",
    ]
    for m in ("plain", "instrumented"):
        lines.append(f"| {m} | {med[m]['drain_per_s']:.0f} | {med[m]['worker_cpu_us_per_task']:.0f} | "
                     f"{med[m]['publish_per_s']:.0f} | {med[m]['worker_main_rss_mib']:.1f} |")
    lines += [
        "",
        "- every round: " + "; ".join(f"{m} " + ", ".join(f"{x['drain_per_s']:.0f}" for x in r[m]) for m in r),
        f"- throughput ratio instrumented / plain: **{ratio:.3f}**",
        (f"- instrumentation cost from worker CPU time: {cpu_cost:.0f} µs per task"
         f" (from throughput: {per_task_us:.0f} µs of 2 cores)"),
        f"- instrumentation cost in-process (all receivers of one task): {micro['receivers_us_per_task']:.1f} µs",
        (f"- exporter CPU per task: {exp_cpu * 1e6:.1f} µs (scraped every second;"
         " Flower: 280 µs per event, ~3 events per task)"),
        (f"- exporter RSS: {data['exporter_rss_mib'][0]:.1f} MiB at start,"
         f" {data['exporter_rss_mib'][1]:.1f} MiB after {data['n'] * data['rounds'] * 2} tasks"),
        f"- metric files in the workers' folder after {data['rounds']} worker restarts: {data['metric_files']}",
        (f"- counts after the run (expected {data['expected']} each): {data['counts']} ->"
         f" {'exact' if exact else 'NOT EXACT'}"),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    data = run(args.tasks, args.rounds)
    print(report(data, _microbench()))


if __name__ == "__main__":
    main()
