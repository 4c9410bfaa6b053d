"""Instructions per request of each web layer, counted by valgrind: a figure no neighbour can move.

    .venv/bin/python -m bench.web.instructions [--tier wsgi|asgi] [--n 300 1300]

(WSGI: about 8 minutes, 8 runs of bench/web/marginal.py under callgrind; ASGI about 40: its request
is seven times longer.) For each variant it runs `marginal --only <variant>` twice, with --n
requests each after the same warm-up, and takes (count at the larger n - count at the smaller)
/ (the difference of the n): start-up, imports and the warm-up cancel out. PYTHONHASHSEED is fixed
so that both runs hash alike. The variants: the app's MIDDLEWARE without RequestMiddleware, with a
pass-through middleware in its place, with RequestMiddleware, and (WSGI) with it and Sentry's
errors-only SDK as the gunicorn hook starts it (a DSN nothing listens on, tracing 0).

Throughput on 2 shared cores (bench/web/run.py) resolves about +-0.05 of bare; this resolves
the in-process cost to a fraction of a percent, and says nothing about gunicorn or the kernel.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SENTRY_ENV = {"SENTRY_DSN": "http://public@127.0.0.1:9/1", "SENTRY_TRACES_SAMPLE_RATE": "0"}
VARIANTS = {  # name: (marginal --only, extra arguments, extra environment)
    "without RequestMiddleware": ("without", [], {}),
    "a pass-through middleware in its place": ("passthrough", [], {}),
    "RequestMiddleware (metrics)": ("with", [], {}),
    "RequestMiddleware + Sentry errors only (production default)": ("with", ["--sentry"], SENTRY_ENV),
}


def count(tier: str, only: str, n: int, extra: list[str], env: dict) -> int:
    """Instructions of one `marginal --only` run under callgrind."""
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-m",
         "bench.web.marginal", "--tier", tier, "--only", only, "--n", str(n), *extra],
        cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0", **env}, capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or not found:
        raise SystemExit(f"marginal --only {only} --n {n} failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return int(found.group(1))


def per_request(small: tuple[int, int], large: tuple[int, int]) -> float:
    """Instructions per request from (n, count) of two runs that differ only in n."""
    (n1, c1), (n2, c2) = small, large
    if n2 <= n1:
        raise ValueError("the second run must serve more requests than the first")
    return (c2 - c1) / (n2 - n1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tier", choices=("wsgi", "asgi"), default="wsgi")
    parser.add_argument("--n", type=int, nargs=2, default=(300, 1300), metavar=("SMALL", "LARGE"))
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        parser.error("valgrind is not installed (apt-get install -y --no-install-recommends valgrind)")
    rows = []
    for name, (only, extra, env) in VARIANTS.items():
        if args.tier == "asgi" and extra:
            continue  # the ASGI tier's Sentry is the same SDK: measured on WSGI only
        runs = [(n, count(args.tier, only, n, extra, env)) for n in args.n]
        rows.append((name, per_request(*runs)))
        print(f"{name}: {rows[-1][1]:,.0f} instructions per request", flush=True)
    base = rows[0][1]
    print(f"\n{args.tier} /healthz, in-process, instructions per request (n = {args.n[0]} and {args.n[1]})\n")
    print("| variant | instructions per request | over the first |")
    print("|---|---|---|")
    for name, value in rows:
        print(f"| {name} | {value:,.0f} | {value - base:+,.0f} ({(value - base) / base:+.1%}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
