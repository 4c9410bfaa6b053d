"""Web instrumentation benchmark: (1) throughput and latency layer by layer, (2) multiprocess storage
after 1,000 worker recycles, ours (slot files) vs stock prometheus_client (pid files).

    .venv/bin/python -m bench.web.run [--seconds 5] [--rounds 2] [--recycles 1000]   (from the repository root)

Part 1 starts one gunicorn (2 sync workers) per layer, all at once, and runs wrk against them
in turn (round robin, so drift of a shared machine hits every layer alike); each figure is the
best round. Ratios are against the bare layer of the same invocation. Part 2 forks --recycles
short-lived "workers" from a loaded Django process, each serving a few requests through the
whole middleware stack and exiting, as max_requests recycling does, then times a scrape.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import stack
from tests.support.fake_sentry import FakeSentry

ROOT = Path(__file__).resolve().parents[2]

VIEWS = {"trivial": "/healthz", "db": "/drills/db-view/"}


def layers(dsn: str) -> dict[str, dict]:
    return {
        "bare": {"DJANGO_SETTINGS_MODULE": "bench.web.settings_bare"},
        "metrics": {"PROMETHEUS_MULTIPROC_DIR": "{dir}"},
        "metrics+sentry errors": {"PROMETHEUS_MULTIPROC_DIR": "{dir}", "SENTRY_DSN": dsn,
                                  "SENTRY_TRACES_SAMPLE_RATE": "0"},  # 0: tracing off
        "production default": {"PROMETHEUS_MULTIPROC_DIR": "{dir}", "SENTRY_DSN": dsn},  # default sample rate
        "sentry traces 1% (info)": {"PROMETHEUS_MULTIPROC_DIR": "{dir}", "SENTRY_DSN": dsn,
                                    "SENTRY_TRACES_SAMPLE_RATE": "0.01"},
        "sentry traces 100% (info)": {"PROMETHEUS_MULTIPROC_DIR": "{dir}", "SENTRY_DSN": dsn,
                                      "SENTRY_TRACES_SAMPLE_RATE": "1.0"},
    }


def _wrk(url: str, seconds: int) -> dict:
    out = subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds}s", "--latency", url], capture_output=True,
                         text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def ms(label):
        m = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50": ms("50%"), "p99": ms("99%"), "non2xx": int(errors.group(1)) if errors else 0}


def _seed(env: dict) -> None:
    code = ("from app.jobs.models import Job; import random; "
            "Job.objects.bulk_create([Job(kind=random.choice(['import','export']), "
            "state=random.choice(['queued','running','succeeded','failed']), progress=random.randint(0,100)) "
            "for _ in range(500)])")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], env=env, cwd=ROOT, check=True)


def part1(seconds: int, rounds: int, workdir: Path) -> dict:
    results: dict = {}
    procs = []
    with FakeSentry() as sentry:
        try:
            servers = {}
            for i, (name, extra) in enumerate(layers(sentry.dsn).items()):
                var = workdir / f"layer{i}"
                (var / "run").mkdir(parents=True)
                env = stack.app_env(var, "redis://127.0.0.1:1/0", DRILLS_ENABLED="1", DJANGO_ENV="drills", GUNICORN_WORKERS="2",
                                    GUNICORN_ACCESS_LOG="/dev/null", GUNICORN_MAX_REQUESTS="0")
                env.pop("PROMETHEUS_MULTIPROC_DIR", None)
                env.update({k: v.format(dir=var / "prometheus") for k, v in extra.items()})
                stack.migrate({k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
                _seed({k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"})
                proc, url = stack.start_gunicorn(env, var, name=f"layer{i}")
                procs.append(proc)
                servers[name] = url
            for view, path in VIEWS.items():
                for name, url in servers.items():  # warm-up
                    _wrk(url + path, 1)
                for _ in range(rounds):
                    for name, url in servers.items():
                        run = _wrk(url + path, seconds)
                        best = results.setdefault(view, {}).get(name)
                        if best is None or run["rps"] > best["rps"]:
                            results[view][name] = run
            results["sentry_items"] = {"events": len(sentry.events()), "transactions": len(sentry.transactions())}
        finally:
            for proc in procs:
                proc.stop()
    return results


_CHILD = r"""
import os, sys, json, time
mode, n = sys.argv[1], int(sys.argv[2])
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "app.settings")
import django_celery_ops  # installs the slot-file storage (multiprocess.install)
if mode == "stock":
    from prometheus_client import values
    values.ValueClass = values.MultiProcessValue()  # prometheus_client's own: files named by pid
import django
django.setup()
from django.test import Client
from django_celery_ops import metrics  # noqa: F401 (our metrics exist in every worker)
client = Client(SERVER_NAME="localhost")
for i in range(n):
    pid = os.fork()
    if pid == 0:
        if mode == "ours":
            from django_celery_ops import multiprocess
            multiprocess.setup("worker")
        for path in ("/healthz", "/drills/db-view/", "/nope/"):
            client.get(path)
        os._exit(0)
    os.waitpid(pid, 0)
"""

_SCRAPE = r"""
import sys, time
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry, path=sys.argv[1])
generate_latest(registry)
times = []
for _ in range(20):
    t = time.perf_counter(); body = generate_latest(registry); times.append(time.perf_counter() - t)
times.sort()
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(json.dumps({"scrape_ms": times[len(times) // 2] * 1000, "bytes": len(body),
                  "max_rss_mib": int(hwm.split()[1]) / 1024}))  # VmHWM: peak RSS of this process image
""".replace("import sys,", "import json, sys,")


def _storage(mode: str, recycles: int, workdir: Path) -> dict:
    var = workdir / f"storage-{mode}-{recycles}"
    (var / "run").mkdir(parents=True)
    env = stack.app_env(var, "redis://127.0.0.1:1/0", DRILLS_ENABLED="1", DJANGO_ENV="test")
    stack.migrate(env)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(var / "prometheus")
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", _CHILD, mode, str(recycles)], env=env, cwd=ROOT, check=True)
    elapsed = time.monotonic() - started
    out = subprocess.run([sys.executable, "-c", _SCRAPE, env["PROMETHEUS_MULTIPROC_DIR"]], env=env, cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    files = [p for p in Path(env["PROMETHEUS_MULTIPROC_DIR"]).iterdir() if p.suffix == ".db"]
    return {**json.loads(out), "db_files": len(files), "mib_on_disk": sum(p.stat().st_size for p in files) / 2**20,
            "seconds": round(elapsed, 1)}


def part2(recycles: int, workdir: Path) -> dict:
    return {mode: {"fresh": _storage(mode, 2, workdir), "recycled": _storage(mode, recycles, workdir)}
            for mode in ("ours", "stock")}


def _report(p1: dict, p2: dict, args) -> str:
    lines = [f"`python -m bench.web.run --seconds {args.seconds} --rounds {args.rounds} --recycles {args.recycles}`", ""]
    for view, path in VIEWS.items():
        lines += [f"### {view} view (`{path}`), 2 sync workers, wrk -t1 -c4", "",
                  "| layer | req/s | ratio to bare | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|---|"]
        bare = p1[view]["bare"]["rps"]
        for name, r in p1[view].items():
            lines.append(f"| {name} | {r['rps']:.0f} | **{r['rps'] / bare:.3f}** | {r['p50']:.2f} | {r['p99']:.2f} "
                         f"| {r['non2xx']} |")
        lines.append("")
    lines += [f"Sentry items received by the fake DSN endpoint: {p1['sentry_items']}", "",
              f"### multiprocess storage after {args.recycles} worker recycles vs a fresh start", "",
              ("| storage | state | .db files | MiB on disk | scrape ms (median of 20) | scraper max RSS MiB "
              "| exposition bytes |"), "|---|---|---|---|---|---|---|"]
    for mode, states in p2.items():
        for state, r in states.items():
            lines.append(f"| {mode} | {state} | {r['db_files']} | {r['mib_on_disk']:.1f} | {r['scrape_ms']:.1f} | "
                         f"{r['max_rss_mib']:.1f} | {r['bytes']} |")
        ratio = states["recycled"]["scrape_ms"] / states["fresh"]["scrape_ms"]
        lines.append(f"| {mode} | **recycled / fresh scrape time** | | | **{ratio:.2f}x** | | |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--recycles", type=int, default=1000)
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp:
        p1 = {} if args.skip_throughput else part1(args.seconds, args.rounds, Path(tmp))
        print(json.dumps({"throughput": p1}), flush=True)  # kept even if part 2 fails
        p2 = part2(args.recycles, Path(tmp))
    print(json.dumps({"throughput": p1, "storage": p2}, indent=1))
    if p1:
        print(_report(p1, p2, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
