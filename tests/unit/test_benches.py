"""The benches' own instruments: the quiet-machine check (bench/web/machine.py) and the scrape bench's count check."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.scrape import run as scrape
from bench.web.machine import Quiet

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"


def test_quiet_counts_the_bench_tree_as_its_own():
    with Quiet() as q:
        subprocess.run([sys.executable, "-c", BURN.format(s=0.4)], check=True)
    assert q.report["own_cpu_s"] >= 0.35  # the reaped child's CPU is the bench's, not "other processes'"
    assert q.report["wall_s"] > 0 and "quiet" in q.report


def test_quiet_counts_a_process_outside_the_tree_as_other():
    # A double fork: the burner is re-parented to init, out of this process's tree, as another user's job is.
    with Quiet(max_other_cpu=1.0) as q:
        out = subprocess.run([sys.executable, "-c", "import subprocess, sys; print(subprocess.Popen([sys.executable, "
                              f"'-c', {BURN.format(s=0.4)!r}], start_new_session=True).pid)"],
                             check=True, capture_output=True, text=True).stdout
        burner = Path(f"/proc/{int(out)}")
        deadline = time.monotonic() + 30
        while burner.exists() and time.monotonic() < deadline:  # init reaps it: then its CPU is in /proc/stat only
            time.sleep(0.05)
    assert q.report["other_cpu_s"] >= 0.35
    assert q.report["own_cpu_s"] < q.report["other_cpu_s"] + 0.5


def _web_body(views: int, workers: int, wrong: str | None = None) -> bytes:
    lines = []
    for fam, labels in [("django_http_responses_total_by_status_view_method_total", 'method="GET",status="200",'),
                        ("django_http_requests_total_by_view_transport_method_total", 'method="GET",transport="http",')]:
        lines.append(f"# TYPE {fam[:-6]} counter")
        for i in range(views):
            value = workers - 1 if wrong == f"bench_view_{i:04d}" and "responses" in fam else workers
            lines.append(f'{fam}{{{labels}view="bench_view_{i:04d}"}} {float(value)}')
    return ("\n".join(lines) + "\n").encode()


def test_scrape_check_accepts_exact_counts_and_names_a_wrong_one():
    assert scrape.check("web", _web_body(3, 8), (3, 8)) == (6, [])
    series, problems = scrape.check("web", _web_body(3, 8, wrong="bench_view_0001"), (3, 8))
    assert series == 6 and len(problems) == 1 and "bench_view_0001" in problems[0]
    _, missing = scrape.check("web", _web_body(2, 8), (3, 8))  # a view the writers made is absent
    assert missing and "bench_view_0002" in missing[0]


@pytest.mark.integration
def test_scrape_bench_cells_are_exact_with_both_readers(tmp_path: Path):
    """A small cell of each grid, written by real processes and read by both readers, as run.py does."""
    env_before = dict(os.environ)
    try:
        scrape._write("web", tmp_path / "web", views=3, workers=2)
        scrape._write("exporter", tmp_path / "ex", names=3, nodes=2, procs=3)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    for tier, folder, size in [("web", tmp_path / "web", (3, 2)), ("exporter", tmp_path / "ex", (3, 2, 3))]:
        for reader in ("ours", "stock"):
            r = scrape.measure(tier, reader, folder, size, runs=1, budget=5, gzip=reader == "ours")
            assert r["problems"] == [], (tier, reader, r["problems"])
            assert r["n"] == 1 and r["series"] > 0


def test_instructions_per_request_cancels_what_both_runs_share():
    from bench.web.instructions import per_request

    start_up = 2_000_000_000  # imports, set-up and warm-up: the same in both runs
    assert per_request((300, start_up + 300 * 981_000), (1300, start_up + 1300 * 981_000)) == 981_000
    with pytest.raises(ValueError):
        per_request((1300, 1), (300, 2))


@pytest.mark.parametrize("variant", [["--only", "passthrough"], ["--only", "with", "--sentry"]])
def test_marginal_serves_each_variant_alone(variant):
    env = {**os.environ, "SENTRY_DSN": "http://public@127.0.0.1:9/1", "SENTRY_TRACES_SAMPLE_RATE": "0"}
    out = subprocess.run([sys.executable, "-m", "bench.web.marginal", *variant, "--n", "3"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]  # every response was a 200 (marginal asserts it)
