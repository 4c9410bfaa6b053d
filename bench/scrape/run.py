"""Scrape benchmark (#21 item 4): render time of /metrics as the folder grows, ours vs prometheus_client's collector.

    .venv/bin/python -m bench.scrape.run                       (from the repository root; est. 7-9 min on 2 quiet cores)
    .venv/bin/python -m bench.scrape.run --grid smoke          (~1 min: a few small cells, to check the bench)
    options: --tiers web,exporter --readers ours,stock --runs 5 --budget 20 --gzip --no-write --cells web:1000x32,...

Grids (issue #21):
  web        views x workers: 10/100/1000 x 2/8/32, plus 1000 x 64. Every worker sends one GET to every
             view through the real middleware stack (bench/scrape/writers.py).
  exporter   task names x nodes, a node = 1 worker main process + 2 pool children: 10x50, 100x10,
             1000x1, 1000x10, 1000x50; plus 1000 names x 30 processes of one node (one host's prefork
             pool of 29 children and its main process; 1000 x 10 nodes is the other reading of
             "30 processes": 10 nodes x 3).
The writers run once per (tier, size) with the largest worker/node count; a cell's folder is
symlinks to the slot files of its first W workers (or K nodes), which is exactly the folder
those W workers would have written.

Readers (--readers): `ours` = the library's long-lived servers, started as production starts them
(metrics_server.make_server for the web tier, exporter.Exporter(...).start() for the exporter), so
the bench measures whatever reader and render path those entry points use now; `stock` =
prometheus_client's MultiProcessCollector + its MetricsHandler, in the same invocation. Each reader
is a fresh process per cell (bench/scrape/reader.py); the bench times HTTP GETs of /metrics from
its own process: the first scrape (cold: index built, files read) and --runs steady-state scrapes
(median reported; a reader whose steady scrapes exceed --budget seconds stops early, after at
least one, and the table shows how many it made; the stock collector keeps nothing between
scrapes, so once its first scrape is past the 10 s scrape_timeout its steady figure is that
scrape, n=0). Also the reader's CPU time per steady scrape (from /proc: steadier than wall time
on a shared machine), its VmHWM (peak RSS), what it keeps after the first scrape (the index) and
the peak of the steady scrapes alone above that (VmHWM reset through /proc/PID/clear_refs), per series. Every body, first and last, is checked for exact
counts (web: every view's response and request counters = W; exporter: every (name, host)'s
received, started and succeeded = the node's pool children); a wrong count fails the run.

celery-exporter (danihodovic) is not on the package index: its figures are the ones recorded in
issue #21 (same cells, same machine kind), shown beside ours, not rerun.
Results: printed, saved as JSON (var/bench/scrape-last-run.json, git-ignored) and written into bench/scrape/RESULTS.md
between the generated-section markers, with the machine's load (bench/web/machine.py); the section
is titled a run of record only when the machine was quiet.
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.web.machine import Quiet, add_quiet_options, describe, wait_for_quiet

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PY = sys.executable

WEB_GRID = [(10, 2), (10, 8), (10, 32), (100, 2), (100, 8), (100, 32), (1000, 2), (1000, 8), (1000, 32), (1000, 64)]
EXPORTER_GRID = [(10, 50, 3), (100, 10, 3), (1000, 1, 3), (1000, 10, 3), (1000, 50, 3), (1000, 1, 30)]
SMOKE = {"web": [(10, 2), (100, 8), (100, 32)], "exporter": [(10, 50, 3), (100, 10, 3), (100, 1, 30)]}
# Issue #21, recorded (not rerun): celery-exporter's render ms per (names, nodes) and the previous ours/stock.
RECORDED_CELERY_EXPORTER = {(10, 50): 191, (100, 10): 419, (1000, 1): 521, (1000, 10): 4461, (1000, 50): 20799}
RECORDED_EXPORTER_SERIES = {(10, 50): 18_700, (100, 10): 37_000, (1000, 1): 38_000, (1000, 10): 371_000,
                            (1000, 50): 1_850_000}  # ours then (celery-exporter's per-series figures use these)
RECORDED_EXPORTER_OURS = {(10, 50): 297, (100, 10): 736, (1000, 1): 630, (1000, 10): 7604, (1000, 50): 37971}
RECORDED_WEB = {(10, 2): (2.3, 3.0), (10, 8): (4.5, 5.6), (10, 32): (13.2, 16.5), (100, 2): (23, 23),
                (100, 8): (48, 49), (100, 32): (147, 149), (1000, 2): (377, 344), (1000, 8): (728, 649),
                (1000, 32): (2030, 2179)}
SCRAPE_TIMEOUT_S = 10.0
BEGIN, END = "<!-- bench/scrape/run.py: generated results begin -->", "<!-- bench/scrape/run.py: generated results end -->"


# --- folders ----------------------------------------------------------------------------------
def _write(tier: str, directory: Path, **sizes) -> dict:
    args = [PY, "-m", "bench.scrape.writers", tier, str(directory)]
    for k, v in sizes.items():
        args += [f"--{k}", str(v)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PROMETHEUS_"))}
    out = subprocess.run(args, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _subset(source: Path, cell: Path, keep) -> int:
    """Symlink into cell the files of source whose slot id passes keep(ident); return the .db count."""
    cell.mkdir(parents=True)
    count = 0
    for f in source.iterdir():
        ident = f.stem.rsplit("_", 1)[-1] if f.suffix == ".db" else f.stem
        if keep(ident):
            (cell / f.name).symlink_to(f)
            count += f.suffix == ".db"
    return count


def _web_keep(workers: int):
    return lambda ident: not re.fullmatch(r"w\d+-\d+", ident) or int(ident[1:].split("-")[0]) < workers


def _exporter_keep(nodes: int):
    return lambda ident: not re.fullmatch(r"n\d+-.*", ident) or int(ident[1:4]) < nodes


# --- checks -----------------------------------------------------------------------------------
def _label(line: str, name: str) -> str | None:
    m = re.search(rf'[{{,]{name}="([^"]*)"', line)
    return m.group(1) if m else None


def _family(lines, name: str, keys: tuple[str, ...], where: dict | None = None) -> dict:
    prefix = name + "{"
    out = {}
    for line in lines:
        if line.startswith(prefix):
            if where and any(_label(line, k) != v for k, v in where.items()):
                continue
            out[tuple(_label(line, k) for k in keys)] = float(line.rsplit(" ", 1)[1])
    return out


def check(tier: str, body: bytes, size: tuple) -> tuple[int, list[str]]:
    """(series count, problems) of one /metrics body against the counts the writers made."""
    lines = [ln for ln in body.decode().split("\n") if ln and not ln.startswith("#")]
    problems = []
    if tier == "web":
        views, workers = size
        expected = {(f"bench_view_{i:04d}",): float(workers) for i in range(views)}
        for fam, where in [("django_http_responses_total_by_status_view_method_total", {"status": "200", "method": "GET"}),
                           ("django_http_requests_total_by_view_transport_method_total", {"method": "GET"})]:
            got = {k: v for k, v in _family(lines, fam, ("view",), where).items() if k[0].startswith("bench_view_")}
            if got != expected:
                wrong = [k for k in set(got) | set(expected) if got.get(k) != expected.get(k)]
                problems.append(f"{fam}: {len(wrong)} views wrong, e.g. {wrong[:3]} "
                                f"got {[got.get(k) for k in wrong[:3]]} expected {workers}")
    else:
        names, nodes, procs = size
        expected = {(f"bench.tasks.task_{i:04d}", f"node{n:03d}"): float(procs - 1)
                    for i in range(names) for n in range(nodes)}
        for fam in ("celery_task_received_total", "celery_task_started_total", "celery_task_succeeded_total"):
            got = _family(lines, fam, ("name", "hostname"))
            if got != expected:
                wrong = [k for k in set(got) | set(expected) if got.get(k) != expected.get(k)]
                problems.append(f"{fam}: {len(wrong)} series wrong, e.g. {wrong[:2]} "
                                f"got {[got.get(k) for k in wrong[:2]]} expected {procs - 1}")
        zero = _family(lines, "celery_task_failed_total", ("name", "hostname"), {"exception": ""})
        if len(zero) != names * nodes or any(v != 0 for v in zero.values()):
            problems.append(f"celery_task_failed_total{{exception=''}}: {len(zero)} series, expected "
                            f"{names * nodes} zeros")
    return len(lines), problems


# --- one reader on one folder -----------------------------------------------------------------
def _proc_status(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_hwm(pid: int) -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0: "5" > /proc/PID/clear_refs); False if refused."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def _get(port: int, gzip: bool) -> tuple[float, bytes]:
    headers = {"Accept-Encoding": "gzip"} if gzip else {}
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", "/metrics", headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    elapsed = time.perf_counter() - started
    conn.close()
    assert resp.status == 200, resp.status
    if resp.getheader("Content-Encoding") == "gzip":
        import gzip as _gzip

        body = _gzip.decompress(body)
    return elapsed, body


def measure(tier: str, reader: str, folder: Path, size: tuple, runs: int, budget: float, gzip: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PROMETHEUS_", "EXPORTER_"))}
    log = folder.parent / f"{folder.name}-{reader}.log"  # the exporter logs its (in-memory) broker's refusal
    with open(log, "w") as err:
        proc = subprocess.Popen([PY, "-m", "bench.scrape.reader", tier, reader, str(folder)], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"reader {tier}/{reader} did not start:\n{log.read_text()[-3000:]}")
        port = json.loads(line)["port"]
        rss0, anon0 = _proc_status(proc.pid, "VmRSS"), _proc_status(proc.pid, "RssAnon")
        cpu0 = _cpu_s(proc.pid)
        first_s, body = _get(port, gzip)
        first_cpu = _cpu_s(proc.pid) - cpu0
        series, problems = check(tier, body, size)
        first_bytes = len(body)
        hwm_first = _proc_status(proc.pid, "VmHWM")
        rss_settled = _proc_status(proc.pid, "VmRSS")  # after the first scrape: the index and what it keeps
        anon_settled = _proc_status(proc.pid, "RssAnon")  # the same without mapped files' pages (the page cache's)
        reset = _reset_hwm(proc.pid)  # so that VmHWM below is the peak of the steady scrapes alone
        steady = []
        spent, c = 0.0, _cpu_s(proc.pid)
        # The stock collector keeps nothing between scrapes (every scrape re-reads every file): once its
        # first scrape is past the scrape_timeout, its steady state is that scrape again (n=0 in the table).
        limit = 0 if reader == "stock" and first_s > SCRAPE_TIMEOUT_S else runs
        while len(steady) < limit and (not steady or spent < budget):
            s, body = _get(port, gzip)
            steady.append(s)
            spent += s
        steady_cpu = (_cpu_s(proc.pid) - c) / len(steady) if steady else first_cpu  # 10 ms ticks: the mean
        n = len(steady)
        steady = steady or [first_s]
        last_series, last_problems = check(tier, body, size)
        hwm_steady = _proc_status(proc.pid, "VmHWM") if reset else None
    finally:
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    problems += [f"last scrape: {p}" for p in last_problems]
    if last_series != series:
        problems.append(f"series count changed between scrapes: {series} -> {last_series}")
    return {"first_ms": first_s * 1000, "first_cpu_ms": first_cpu * 1000, "steady_ms": statistics.median(steady) * 1000,
            "steady_min_ms": min(steady) * 1000, "steady_max_ms": max(steady) * 1000,
            "steady_cpu_ms": steady_cpu * 1000, "n": n, "series": series, "bytes": first_bytes,
            "vmhwm_mib": max(hwm_first, hwm_steady or 0) / 2**20, "rss_before_mib": rss0 / 2**20,
            "peak_bytes_per_series": (max(hwm_first, hwm_steady or 0) - rss0) / max(series, 1),
            "kept_bytes_per_series": (rss_settled - rss0) / max(series, 1),
            "kept_anon_bytes_per_series": (anon_settled - anon0) / max(series, 1),
            "steady_peak_bytes_per_series": ((hwm_steady - rss_settled) / max(series, 1)) if reset else None,
            "problems": problems}


# --- the grids ----------------------------------------------------------------------------------
def run(args, workdir: Path) -> dict:
    grids = SMOKE if args.grid == "smoke" else {"web": WEB_GRID, "exporter": EXPORTER_GRID}
    wanted = set(args.cells.split(",")) if args.cells else None
    results: dict = {"cells": [], "writers": []}
    readers = args.readers.split(",")
    flip = 0
    for tier in args.tiers.split(","):
        cells = [c for c in grids[tier] if not wanted or f"{tier}:{'x'.join(map(str, c))}" in wanted]
        sources: dict = {}
        for cell in cells:
            if tier == "web":
                views, workers = cell
                key = views
                most = max(w for v, w in cells if v == views)
                sizes, keep = {"views": views, "workers": most}, _web_keep(workers)
            else:
                names, nodes, procs = cell
                key = (names, procs)
                most = max(k for n, k, p in cells if (n, p) == key)
                sizes, keep = {"names": names, "nodes": most, "procs": procs}, _exporter_keep(nodes)
            if key not in sources:
                src = workdir / f"src-{tier}-{'-'.join(map(str, sizes.values()))}"
                info = _write(tier, src, **sizes)
                results["writers"].append(info)
                print(f"wrote {info}", flush=True)
                sources[key] = src
            folder = workdir / f"cell-{tier}-{'x'.join(map(str, cell))}"
            db_files = _subset(sources[key], folder, keep)
            row = {"tier": tier, "size": list(cell), "db_files": db_files, "readers": {}}
            order = readers if flip % 2 == 0 else readers[::-1]  # alternate who reads the page cache first
            flip += 1
            for reader in order:
                r = measure(tier, reader, folder, cell, args.runs, args.budget, args.gzip)
                row["readers"][reader] = r
                print(f"{tier} {'x'.join(map(str, cell))} {reader}: first {r['first_ms']:.1f} ms (cpu {r['first_cpu_ms']:.0f}), steady "
                      f"{r['steady_ms']:.1f} ms (n={r['n']}, cpu {r['steady_cpu_ms']:.1f} ms), {r['series']} series, "
                      f"VmHWM {r['vmhwm_mib']:.0f} MiB, {'EXACT' if not r['problems'] else r['problems']}", flush=True)
            results["cells"].append(row)
    return results


# --- report -----------------------------------------------------------------------------------
def _ms(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def _targets(results: dict) -> list[str]:
    out = []

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    rows = {(r["tier"], tuple(r["size"])): r for r in results["cells"]}
    ours = {k: r["readers"]["ours"] for k, r in rows.items() if "ours" in r["readers"]}
    stock = {k: r["readers"]["stock"] for k, r in rows.items() if "stock" in r["readers"]}
    exact = all(not rd["problems"] for r in results["cells"] for rd in r["readers"].values())
    out.append(f"- exact counts in every cell, every reader, first and last scrape: {verdict(exact)}")
    w = ours.get(("web", (1000, 32)))
    if w:
        out.append(f"- web 1000 views x 32 workers <= 200 ms: {_ms(w['steady_ms'])} ms {verdict(w['steady_ms'] <= 200)}")
    for views in (10, 100, 1000):
        a, b = ours.get(("web", (views, 2))), ours.get(("web", (views, 32)))
        if a and b:
            ratio = b["steady_ms"] / a["steady_ms"]
            out.append(f"- web {views} views: 32 workers / 2 workers <= 1.5: {ratio:.2f} {verdict(ratio <= 1.5)}")
    below = [(k, ours[k]["steady_ms"], stock[k]["steady_ms"]) for k in ours if k in stock and k[0] == "web"]
    if below:
        bad = [f"{'x'.join(map(str, k[1]))} ({o:.1f} vs {s:.1f})" for k, o, s in below if o > s]
        out.append(f"- web at or below stock in every cell: {verdict(not bad)}" + (f" (above in {', '.join(bad)})" if bad else ""))
    for k, rec in RECORDED_CELERY_EXPORTER.items():
        o = ours.get(("exporter", (*k, 3)))
        if o:
            per, rec_per = o["steady_ms"] * 1000 / o["series"], rec * 1000 / RECORDED_EXPORTER_SERIES[k]
            out.append(f"- exporter {k[0]} x {k[1]} <= celery-exporter's recorded {rec:,} ms: {_ms(o['steady_ms'])} ms "
                       f"{verdict(o['steady_ms'] <= rec)}; per series {per:.2f} vs {rec_per:.2f} µs "
                       f"{verdict(per <= rec_per)}")
    o = ours.get(("exporter", (1000, 10, 3)))
    if o:
        out.append(f"- exporter 1000 x 10 <= 1 s: {_ms(o['steady_ms'])} ms {verdict(o['steady_ms'] <= 1000)}")
    for key, label in [(("exporter", (1000, 1, 30)), "1000 task names x 30 processes (1 node)"),
                       (("exporter", (1000, 10, 3)), "1000 task names x 30 processes (10 nodes x 3)"),
                       (("web", (1000, 64)), "1000 views x 64 workers")]:
        o = ours.get(key)
        if o:
            worst = max(o["first_ms"], o["steady_max_ms"])
            out.append(f"- {label}: no scrape over {SCRAPE_TIMEOUT_S / 2:.0f} s (half the scrape_timeout): worst "
                       f"{_ms(worst)} ms {verdict(worst <= SCRAPE_TIMEOUT_S * 500)}")
    return out


def report(results: dict, machine: dict, args) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    record = machine["quiet"] and args.grid == "full" and not args.cells
    why = [w for w, bad in [("machine not quiet", not machine["quiet"]),
                            ("partial grid", args.grid != "full" or bool(args.cells))] if bad]
    title = "Run of record" if record else f"Run NOT of record ({', '.join(why)})"
    lines = [f"## {title}: {when}", "", f"`python -m bench.scrape.run {' '.join(sys.argv[1:])}`".replace(" `", "`"),
             "", describe(machine), "",
             f"Python {sys.version.split()[0]}; readers: {args.readers}; steady = median of up to {args.runs} "
             f"scrapes (n shown; --budget {args.budget:g} s); gzip {'on' if args.gzip else 'off'}. ms = wall time of "
             "an HTTP GET of /metrics from the bench process; cpu = the reader's CPU per steady scrape (mean; /proc ticks of 10 ms); "
             "B/series = (VmHWM - RSS before the first scrape) / series; kept = (RSS after the first scrape - RSS "
             "before) / series (the index and what the reader keeps; VmRSS counts the pages of the slot files the "
             "reader maps, which are the page cache's), (anon) = the same of RssAnon, the process's own memory; steady peak = (VmHWM of the steady scrapes "
             "alone, reset through /proc/PID/clear_refs - RSS after the first scrape) / series (#21: <= 200 B).", ""]
    for tier in ("web", "exporter"):
        rows = [r for r in results["cells"] if r["tier"] == tier]
        if not rows:
            continue
        if tier == "web":
            lines += ["### Web tier /metrics (views x workers)", "",
                      "| views x workers | .db files | series | kB | ours first ms (cpu) | ours steady ms (n) | ours cpu ms "
                      "| ours µs/series | ours VmHWM MiB (B/series) | ours kept (anon) / steady peak B/series | stock first ms (cpu) "
                      "| stock steady ms (n) | stock cpu ms | stock VmHWM MiB (B/series) | ours/stock "
                      "| recorded #21 ours/stock ms | exact |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        else:
            lines += ["### Celery exporter /metrics (task names x nodes x processes per node)", "",
                      "| names x nodes x procs | .db files | series | kB | ours first ms (cpu) | ours steady ms (n) | ours cpu ms "
                      "| ours µs/series | ours VmHWM MiB (B/series) | ours kept (anon) / steady peak B/series | stock first ms (cpu) "
                      "| stock steady ms (n) | stock cpu ms | stock VmHWM MiB (B/series) | ours/stock "
                      "| celery-exporter ms (recorded) | celery-exporter µs/series (recorded) | recorded #21 ours ms "
                      "| exact |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            o, s = r["readers"].get("ours"), r["readers"].get("stock")
            any_r = o or s
            cells = [" x ".join(map(str, r["size"])), str(r["db_files"]), f"{any_r['series']:,}", f"{any_r['bytes'] / 1000:,.0f}"]
            for rd, own in ((o, True), (s, False)):
                if rd:
                    cells += [f"{_ms(rd['first_ms'])} ({_ms(rd['first_cpu_ms'])})", f"{_ms(rd['steady_ms'])} ({rd['n']})",
                              _ms(rd["steady_cpu_ms"])]
                    if own:
                        cells.append(f"{rd['steady_ms'] * 1000 / max(rd['series'], 1):.2f}")
                    cells.append(f"{rd['vmhwm_mib']:.0f} ({rd['peak_bytes_per_series']:.0f})")
                    if own:
                        sp = rd["steady_peak_bytes_per_series"]
                        cells.append(f"{rd['kept_bytes_per_series']:.0f} ({rd.get('kept_anon_bytes_per_series', 0):.0f}) / "
                                     f"{'-' if sp is None else f'{sp:.0f}'}")
                else:
                    cells += ["-", "-", "-"] + (["-", "-"] if own else []) + ["-"]
            cells.append(f"{o['steady_ms'] / s['steady_ms']:.2f}" if o and s else "-")
            if tier == "web":
                rec = RECORDED_WEB.get(tuple(r["size"]))
                cells.append(f"{rec[0]}/{rec[1]}" if rec else "-")
            else:
                key = tuple(r["size"][:2]) if r["size"][2] == 3 else None
                cells.append(f"{RECORDED_CELERY_EXPORTER[key]:,}" if key in RECORDED_CELERY_EXPORTER else "-")
                cells.append(f"{RECORDED_CELERY_EXPORTER[key] * 1000 / RECORDED_EXPORTER_SERIES[key]:.1f}"
                             if key in RECORDED_CELERY_EXPORTER else "-")
                cells.append(f"{RECORDED_EXPORTER_OURS[key]:,}" if key in RECORDED_EXPORTER_OURS else "-")
            ok = all(not rd["problems"] for rd in r["readers"].values())
            cells.append("yes" if ok else "**NO**")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Targets (#21), ours", "", *_targets(results), ""]
    problems = [f"- {r['tier']} {r['size']} {name}: {p}" for r in results["cells"] for name, rd in r["readers"].items()
                for p in rd["problems"]]
    if problems:
        lines += ["### Count problems", "", *problems, ""]
    return "\n".join(lines)


def write_results(section: str) -> None:
    path = HERE / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Scrape benchmark: results\n\n"
    block = f"{BEGIN}\n{section}\n{END}"
    if BEGIN in text and END in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--grid", choices=["full", "smoke"], default="full")
    parser.add_argument("--tiers", default="web,exporter")
    parser.add_argument("--readers", default="ours,stock")
    parser.add_argument("--cells", default="", help="comma list such as web:1000x32,exporter:1000x10x3")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of steady scrapes per reader per cell")
    parser.add_argument("--gzip", action="store_true", help="ask for gzip (Accept-Encoding), as Prometheus does")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    add_quiet_options(parser)
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                        help="first wait up to SECONDS for the load average to fall to --max-load")
    args = parser.parse_args()
    if args.wait_quiet:
        print(f"load average {wait_for_quiet(args.max_load, args.wait_quiet):.2f} after waiting", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        with Quiet(args.max_load, args.max_other_cpu) as quiet:
            results = run(args, Path(tmp))
    results["machine"] = quiet.report
    saved = ROOT / "var" / "bench"  # git-ignored
    saved.mkdir(parents=True, exist_ok=True)
    (saved / "scrape-last-run.json").write_text(json.dumps(results, indent=1))
    section = report(results, quiet.report, args)
    print(section)
    if not args.no_write:
        write_results(section)
    bad = any(rd["problems"] for r in results["cells"] for rd in r["readers"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
