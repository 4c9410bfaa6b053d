"""Web instrumentation benchmark (#17): throughput of each layer as a ratio to bare, in one invocation.

    .venv/bin/python -m bench.web.run                  (from the repository root: about 6-7 minutes on 2 cores)
    .venv/bin/python -m bench.web.run --seconds 1 --rounds 2 --recycles 0 --no-write   (smoke: ~2 min)
    options: --seconds 4 --rounds 5 --recycles 100 --inproc-rounds 5 --info --no-write --max-load --max-other-cpu

Part 1 starts one gunicorn per layer (bench/web/layers.py; 2 workers each, access log off, no
max_requests): WSGI sync workers, and for the ASGI rows the app's ASGI tier (gunicorn + the uvicorn
worker class app.api.workers.UvicornWorker, as ops/Procfile runs it) with its own bare baseline
(bench/web/asgi_bare.py). All servers are up at once and take turns under `wrk -t1 -c4` for
--seconds each: --rounds rounds (>= 5 for a run of record), the order rotated every round, so
drift of the machine spreads over every layer. A layer's ratio is taken against its tier's bare
layer *in the same round*; the table gives the median over rounds and the spread (min-max and
the interquartile range). Layers: bare, metrics, metrics + Sentry errors (tracing off),
production default, stock django-prometheus 2.5 (its middleware pair, multiprocess mode:
bench/web/settings_stock.py, the anchor), metrics + D's ProfilingMiddleware armed but not asked
(when the middleware exists), and ASGI bare / metrics; the db view for bare, metrics and
production default. The fake Sentry endpoint (a stdlib HTTP server here) receives everything.

Part 2 (in-process, bench/web/profile_request.py): µs per request of every layer and view,
straight into the WSGI/ASGI application, the layers taking turns --inproc-rounds times.

Part 3 (--recycles N, 0 skips): multiprocess storage after N worker recycles, ours (slot files)
vs stock prometheus_client (pid files): files, size and the scrape time against a fresh start.

Machine: bench/web/machine.py records the load average before/after and other processes' CPU
during the run. Only a quiet machine (and >= 5 rounds) gives a "run of record", which is written
into bench/web/RESULTS.md; otherwise the results are printed and saved (git-ignored) as
var/bench/web-last-run.md and .json, marked NOT of record, and RESULTS.md is left alone.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.web import profile_request
from bench.web.layers import TARGETS, VIEWS, layers, profiling_available
from bench.web.machine import Quiet, add_quiet_options, describe, wait_for_quiet, wrk
from tests.support import stack
from tests.support.fake_sentry import FakeSentry

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ASGI_WORKER = "app.api.workers.UvicornWorker"
SAVED = ROOT / "var" / "bench"  # git-ignored: every run's tables, of record or not
MARK = "<!-- bench/web/run.py inserts runs of record below this line -->"


def _seed(env: dict) -> None:
    code = ("from app.jobs.models import Job; import random; random.seed(1); "
            "Job.objects.bulk_create([Job(kind=random.choice(['import','export']), "
            "state=random.choice(['queued','running','succeeded','failed']), progress=random.randint(0,100)) "
            "for _ in range(500)])")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], env=env, cwd=ROOT, check=True,
                   capture_output=True)


def _quartiles(xs: list[float]) -> tuple[float, float]:
    if len(xs) < 2:
        return xs[0], xs[0]
    q = statistics.quantiles(xs, n=4, method="inclusive")
    return q[0], q[2]


def part1(chosen: dict, seconds: float, rounds: int, connections: int, workdir: Path, dsn: str) -> dict:
    procs, servers = [], {}
    database = f"sqlite:///{workdir / 'shared.sqlite3'}"  # one database for every layer: same rows, read only
    try:
        for i, (name, layer) in enumerate(chosen.items()):
            var = workdir / f"layer{i}"
            (var / "run").mkdir(parents=True)
            env = stack.app_env(var, "redis://127.0.0.1:1/0", DRILLS_ENABLED="1", DJANGO_ENV="drills",
                                GUNICORN_WORKERS="2", GUNICORN_ACCESS_LOG="/dev/null", GUNICORN_MAX_REQUESTS="0",
                                DJANGO_SETTINGS_MODULE=layer["settings"], DATABASE_URL=database)
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
            env.update({k: v.format(dir=var / "prometheus", dsn=dsn) for k, v in layer["env"].items()})
            if i == 0:
                plain = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
                stack.migrate({**plain, "DJANGO_SETTINGS_MODULE": "app.settings"})
                _seed({**plain, "DJANGO_SETTINGS_MODULE": "app.settings"})
            extra = ["--worker-class", ASGI_WORKER] if layer["tier"] == "asgi" else []
            proc, url = stack.start_gunicorn(env, var, name=f"layer{i}", app=layer["app"], extra=extra)
            procs.append(proc)
            servers[name] = url
        units = [(name, view) for name, layer in chosen.items() for view in layer["views"]]
        close = {name: layer["tier"] == "asgi" for name, layer in chosen.items()}  # see machine.wrk
        for name, view in units:  # warm-up
            wrk(servers[name] + VIEWS[view], 1, connections, close[name])
        runs: dict = {u: [] for u in units}
        n = len(units)
        step = next(s for s in range(n // 2 or 1, 0, -1) if math.gcd(s, n) == 1)  # ~half-way, co-prime with n
        for r in range(rounds):
            k = (r * step) % n  # each round starts elsewhere: no layer keeps the first or last slot
            for name, view in units[k:] + units[:k]:
                runs[name, view].append(wrk(servers[name] + VIEWS[view], seconds, connections, close[name]))
        files = {}
        for i, name in enumerate(chosen):  # what each layer's storage wrote: slot files, or stock's pid files
            folder = workdir / f"layer{i}" / "prometheus"
            names = [p.stem for p in folder.glob("*.db")] if folder.is_dir() else []
            files[name] = {"db_files": len(names), "pid_named": sum(n.rsplit("_", 1)[-1].isdigit() for n in names)}
    finally:
        for proc in procs:
            proc.stop()
    out = {"files": files}
    for (name, view), rs in runs.items():
        bare = runs[chosen[name]["bare"], view]
        ratios = [a["rps"] / b["rps"] for a, b in zip(rs, bare)]
        q1, q3 = _quartiles(ratios)
        out[f"{name}|{view}"] = {
            "layer": name, "view": view, "rps": [r["rps"] for r in rs], "ratios": ratios,
            "rps_median": statistics.median(r["rps"] for r in rs), "ratio_median": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios), "ratio_q1": q1, "ratio_q3": q3,
            "p50": statistics.median(r["p50"] for r in rs), "p99": statistics.median(r["p99"] for r in rs),
            "non2xx": sum(r["non2xx"] for r in rs),
        }
    return out


def _storage_note(files: dict) -> str:
    return "Metric files each layer's workers wrote (all .db / pid-named): " + ", ".join(
        f"{name} {f['db_files']}/{f['pid_named']}" for name, f in files.items())


def part2(chosen: dict, rounds: int, workdir: Path, dsn: str) -> dict:
    pool = profile_request.Pool(chosen, workdir, dsn)
    try:
        result = profile_request.rounds(pool, chosen, None, rounds)
    finally:
        pool.close()
    sizes = result.pop("sizes")
    return {f"{name}|{view}": {"median": statistics.median(us), "min": min(us), "max": max(us), "n": sizes[name, view],
                               "rounds": us} for (name, view), us in result.items()}


# --- part 3: storage after recycling ----------------------------------------------------------------
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
import json, sys, time
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
"""


def _storage(mode: str, recycles: int, workdir: Path) -> dict:
    var = workdir / f"storage-{mode}-{recycles}"
    (var / "run").mkdir(parents=True)
    env = stack.app_env(var, "redis://127.0.0.1:1/0", DRILLS_ENABLED="1", DJANGO_ENV="test")
    stack.migrate(env)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(var / "prometheus")
    subprocess.run([sys.executable, "-c", _CHILD, mode, str(recycles)], env=env, cwd=ROOT, check=True,
                   capture_output=True)
    out = subprocess.run([sys.executable, "-c", _SCRAPE, env["PROMETHEUS_MULTIPROC_DIR"]], env=env, cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    files = [p for p in Path(env["PROMETHEUS_MULTIPROC_DIR"]).iterdir() if p.suffix == ".db"]
    return {**json.loads(out), "db_files": len(files), "mib_on_disk": sum(p.stat().st_size for p in files) / 2**20}


def part3(recycles: int, workdir: Path) -> dict:
    return {mode: {"fresh": _storage(mode, 2, workdir), "recycled": _storage(mode, recycles, workdir)}
            for mode in ("ours", "stock")}


# --- report ---------------------------------------------------------------------------------------------
def report(p1: dict, p2: dict, p3: dict, machine: dict, args, record: bool, notes: list[str]) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    why = [] if record else [w for w, bad in [("machine not quiet", not machine["quiet"]),
                                              (f"{args.rounds} rounds < 5", args.rounds < 5)] if bad]
    title = f"Run of record: {when}" if record else f"Run NOT of record ({', '.join(why) or 'not written'}): {when}"
    lines = [f"## {title}", "", f"`python -m bench.web.run {' '.join(sys.argv[1:])}`", "", describe(machine), "",
             f"{args.rounds} rounds x {args.seconds:g} s per layer and view, `wrk -t1 -c{args.connections}` (ASGI rows with "
             "`-H 'Connection: close'`: uvicorn keeps connections, which would pin them to one worker), 2 workers "
             "per layer, order rotated every round; ratio = req/s over the same tier's bare layer in the same round "
             "(median over rounds, min-max, IQR). In-process: µs per request straight into the application, "
             f"median over {args.inproc_rounds} rounds (min-max); +µs = over the tier's bare layer.", *notes, ""]
    for view in VIEWS:
        rows = [r for r in p1.values() if r["view"] == view]
        if not rows:
            continue
        lines += [f"### {view} view (`{VIEWS[view]}`)", "",
                  "| layer | req/s (median) | ratio to bare (median) | min-max | IQR | target | in-process µs/req "
                  "(min-max) | +µs vs bare | p50 ms | p99 ms | non-2xx |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            key = f"{r['layer']}|{view}"
            target = TARGETS.get((r["layer"], view))
            verdict = (f"{'PASS' if r['ratio_median'] >= target else 'FAIL'} (>= {target})" if target else "")
            ip = p2.get(key)
            bare_ip = p2.get(f"{'asgi bare' if r['layer'].startswith('asgi') else 'bare'}|{view}")
            ip_cell = f"{ip['median']:.1f} ({ip['min']:.0f}-{ip['max']:.0f})" if ip else "-"
            plus = f"{ip['median'] - bare_ip['median']:+.1f}" if ip and bare_ip else "-"
            lines.append(f"| {r['layer']} | {r['rps_median']:.0f} | **{r['ratio_median']:.3f}** | "
                         f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f} | {r['ratio_q1']:.3f}-{r['ratio_q3']:.3f} | "
                         f"{verdict} | {ip_cell} | {plus} | {r['p50']:.2f} | {r['p99']:.2f} | {r['non2xx']} |")
        lines.append("")
    prof = p1.get("metrics+profiling armed, off|trivial"), p1.get("metrics|trivial")
    if all(prof):
        cost = 1 - prof[0]["ratio_median"] / prof[1]["ratio_median"]
        ip = p2.get("metrics+profiling armed, off|trivial"), p2.get("metrics|trivial")
        extra = f"; in-process {ip[0]['median'] - ip[1]['median']:+.1f} µs/request" if all(ip) else ""
        lines += [f"ProfilingMiddleware armed but not asked costs {cost * 100:.1f} % of the metrics layer's "
                  f"throughput (#13: <= 1 %: {'PASS' if cost <= 0.01 else 'FAIL'}){extra}.", ""]
    if p3:
        lines += [f"### multiprocess storage after {args.recycles} worker recycles vs a fresh start", "",
                  "| storage | state | .db files | MiB on disk | scrape ms (median of 20) | scraper max RSS MiB "
                  "| exposition bytes |", "|---|---|---|---|---|---|---|"]
        for mode, states in p3.items():
            for state, r in states.items():
                lines.append(f"| {mode} | {state} | {r['db_files']} | {r['mib_on_disk']:.1f} | {r['scrape_ms']:.1f} | "
                             f"{r['max_rss_mib']:.1f} | {r['bytes']} |")
            ratio = states["recycled"]["scrape_ms"] / states["fresh"]["scrape_ms"]
            lines.append(f"| {mode} | **recycled / fresh scrape time** | | | **{ratio:.2f}x** | | |")
        lines.append("")
    return "\n".join(lines)


def write_record(section: str) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text()
    if MARK not in text:  # first run of record: the marker goes before the first section
        head, sep, rest = text.partition("\n## ")
        text = f"{head.rstrip()}\n\n{MARK}\n\n{sep.lstrip()}{rest}" if sep else f"{text.rstrip()}\n\n{MARK}\n"
    before, _, after = text.partition(MARK)
    path.write_text(f"{before}{MARK}\n\n{section}\n{after.lstrip(chr(10)) and chr(10) + after.lstrip(chr(10))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--inproc-rounds", type=int, default=5)
    parser.add_argument("--recycles", type=int, default=100, help="part 3; 0 skips it")
    parser.add_argument("--info", action="store_true", help="add the informative 1 %% tracing layer")
    parser.add_argument("--layer", action="append", help="only these layers (plus the bare ones)")
    parser.add_argument("--no-write", action="store_true", help="never touch RESULTS.md")
    add_quiet_options(parser)
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS for the load average to fall to --max-load")
    args = parser.parse_args()
    if args.wait_quiet:
        print(f"load average {wait_for_quiet(args.max_load, args.wait_quiet):.2f} after waiting", flush=True)
    chosen = layers(include_info=args.info)
    if args.layer:
        chosen = {k: v for k, v in chosen.items() if k in args.layer or k in ("bare", "asgi bare")}
    notes = [] if profiling_available() else [
        "", "ProfilingMiddleware (django_celery_ops.profiling) is not in the app's MIDDLEWARE: no profiling row."]
    with tempfile.TemporaryDirectory(prefix="bench-web-") as tmp, FakeSentry() as sentry:
        with Quiet(args.max_load, args.max_other_cpu) as quiet:
            p1 = part1(chosen, args.seconds, args.rounds, args.connections, Path(tmp), sentry.dsn)
            print(json.dumps({"throughput": p1}), flush=True)  # kept even if a later part fails
            files = p1.pop("files")
            p2 = part2(chosen, args.inproc_rounds, Path(tmp), sentry.dsn)
            p3 = part3(args.recycles, Path(tmp)) if args.recycles else {}
        items = {"events": len(sentry.events()), "transactions": len(sentry.transactions())}
    notes += ["", f"Sentry items received by the fake DSN endpoint: {items}", "", _storage_note(files)]
    record = quiet.report["quiet"] and args.rounds >= 5 and not args.layer
    section = report(p1, p2, p3, quiet.report, args, record, notes)
    SAVED.mkdir(parents=True, exist_ok=True)
    (SAVED / "web-last-run.json").write_text(json.dumps({"throughput": p1, "files": files, "inprocess": p2, "storage": p3,
                                                    "machine": quiet.report, "record": record}, indent=1))
    (SAVED / "web-last-run.md").write_text(section + "\n")
    print(section)
    if record and not args.no_write:
        write_record(section)
        print("written into bench/web/RESULTS.md as a run of record")
    else:
        print("NOT a run of record: RESULTS.md left alone; saved as var/bench/web-last-run.md and .json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
