"""Proxy benchmark (#13 item 6): throughput through nginx against gunicorn directly, as a ratio, in one invocation.

    .venv/bin/python -m bench.proxy.run                          (about 1 minute: 5 rounds x 4 s x 2 paths)
    .venv/bin/python -m bench.proxy.run --seconds 1 --rounds 2 --no-write   (smoke: ~20 s)
    options: --seconds 4 --rounds 5 --connections 4 --view /healthz --no-mtail --no-write --max-load --max-other-cpu

One gunicorn (the WSGI tier: 2 sync workers, production settings and metrics on, access log
off, no max_requests) and one nginx in front of it, rendered from ops/nginx/ as the stack runs
it (buffering, keepalive to the upstream, the access log written), with mtail tailing that log
as in the stack (--no-mtail leaves it out). `wrk -t1 -c<connections>` on the trivial view
(/healthz) takes turns on the two paths, --seconds each, --rounds rounds, the order swapped
every round; the ratio proxied / direct is taken within each round, and the table gives the
median and the spread. Target: >= 0.9 (issue 13).

Machine: bench/web/machine.py records the load and other processes' CPU. Only a quiet machine
and >= 5 rounds give a run of record, written into bench/proxy/RESULTS.md; otherwise the result
is saved as bench/proxy/last-run.md and last-run.json, marked NOT of record.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.web.machine import Quiet, add_quiet_options, describe, wrk
from ops.drills.procs import app_env, migrate, start_gunicorn, start_mtail, start_nginx

HERE = Path(__file__).resolve().parent
MARK = "<!-- bench/proxy/run.py inserts runs of record below this line -->"
TARGET_RATIO = 0.9


def measure(seconds: float, rounds: int, connections: int, view: str, mtail: bool, workdir: Path) -> dict:
    metrics = workdir / "metrics"
    metrics.mkdir(parents=True)
    env = app_env(workdir, "redis://127.0.0.1:1/0", GUNICORN_WORKERS="2", GUNICORN_ACCESS_LOG="/dev/null",
                  GUNICORN_MAX_REQUESTS="0", PROMETHEUS_MULTIPROC_DIR=str(metrics), OBS_TRUSTED_PROXIES="127.0.0.1")
    migrate(env)
    procs = []
    try:
        gunicorn, direct = start_gunicorn(env, workdir)
        procs.append(gunicorn)
        nginx = start_nginx(workdir, direct)
        procs.append(nginx)
        if mtail:
            procs.append(start_mtail(workdir / "mtail", nginx.access_log))
        urls = {"direct": direct + view, "proxied": nginx.url + view}
        for url in urls.values():  # warm-up
            wrk(url, 1, connections)
        runs: dict[str, list[dict]] = {"direct": [], "proxied": []}
        for r in range(rounds):
            for path in (("direct", "proxied") if r % 2 == 0 else ("proxied", "direct")):
                runs[path].append(wrk(urls[path], seconds, connections))
    finally:
        for proc in reversed(procs):
            proc.stop()
    ratios = [p["rps"] / d["rps"] for p, d in zip(runs["proxied"], runs["direct"])]
    return {
        "view": view, "connections": connections, "seconds": seconds, "rounds": rounds, "mtail": mtail,
        "rps": {path: [x["rps"] for x in rs] for path, rs in runs.items()},
        "rps_median": {path: statistics.median(x["rps"] for x in rs) for path, rs in runs.items()},
        "p50_ms": {path: statistics.median(x["p50"] for x in rs) for path, rs in runs.items()},
        "p99_ms": {path: statistics.median(x["p99"] for x in rs) for path, rs in runs.items()},
        "non2xx": {path: sum(x["non2xx"] for x in rs) for path, rs in runs.items()},
        "ratios": ratios, "ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def report(result: dict, machine: dict, record: bool) -> str:
    verdict = "meets" if result["ratio_median"] >= TARGET_RATIO else "MISSES"
    lines = [
        f"## {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}" + ("" if record else " (NOT a run of record)"),
        "",
        f"`wrk -t1 -c{result['connections']}` on `{result['view']}`, {result['rounds']} rounds x "
        f"{result['seconds']:g} s per path, 2 sync workers; nginx from ops/nginx/ with its access log"
        + (" and mtail tailing it" if result["mtail"] else " (mtail off)") + ".",
        "",
        "| path | req/s (median) | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|",
    ]
    for path in ("direct", "proxied"):
        lines.append(f"| {path} | {result['rps_median'][path]:.0f} | {result['p50_ms'][path]:.2f} | "
                     f"{result['p99_ms'][path]:.2f} | {result['non2xx'][path]} |")
    lines += ["", f"**proxied / direct = {result['ratio_median']:.3f}** (median of {result['rounds']} rounds; "
              f"min {result['ratio_min']:.3f}, max {result['ratio_max']:.3f}): {verdict} the target >= "
              f"{TARGET_RATIO}.", "", describe(machine)]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--view", default="/healthz")
    parser.add_argument("--no-mtail", action="store_true", help="leave mtail out (nginx still writes its log)")
    parser.add_argument("--no-write", action="store_true", help="never touch RESULTS.md")
    add_quiet_options(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp:
        with Quiet(args.max_load, args.max_other_cpu) as quiet:
            result = measure(args.seconds, args.rounds, args.connections, args.view, not args.no_mtail, Path(tmp))
    record = quiet.report["quiet"] and args.rounds >= 5
    section = report(result, quiet.report, record)
    (HERE / "last-run.json").write_text(json.dumps({**result, "machine": quiet.report, "record": record}, indent=1))
    (HERE / "last-run.md").write_text(section + "\n")
    print(section)
    if record and not args.no_write:
        results = HERE / "RESULTS.md"
        text = results.read_text()
        results.write_text(text.replace(MARK, MARK + "\n\n" + section, 1))
        print("written into bench/proxy/RESULTS.md as a run of record")
    else:
        print("NOT a run of record: RESULTS.md left alone; saved as bench/proxy/last-run.md and last-run.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
