"""Slot-named multiprocess files: bounded by live processes, counters exact across deaths."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from django_celery_ops import multiprocess
from tests.support.stack import ROOT

_CHILD = textwrap.dedent("""
    import os, sys, time
    from django_celery_ops import multiprocess
    multiprocess.setup(sys.argv[1])
    from prometheus_client import Counter, Gauge
    done = Counter("drill_done", "work done")
    busy = Gauge("drill_busy", "busy now", multiprocess_mode="livesum")
    done.inc()
    busy.set(1)
    print(multiprocess.setup(sys.argv[1]), flush=True)
    if sys.argv[2] == "hang":
        time.sleep(60)
""")


def _run(tmp_path, role="w", mode="exit"):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    return subprocess.Popen([sys.executable, "-c", _CHILD, role, mode], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)


def _samples(path):
    """One scrape, as the metrics server and the Celery exporter make it."""
    registry = multiprocess.collector_registry(str(path))
    return {s.name: s.value for m in registry.collect() for s in m.samples}


def test_sequential_processes_reuse_one_slot_and_counters_add_up(tmp_path):
    slots = set()
    for _ in range(12):
        child = _run(tmp_path)
        slots.add(child.communicate(timeout=30)[0].strip())
        assert child.returncode == 0
    assert slots == {"w-0"}
    assert sorted(p.name for p in tmp_path.glob("*.db")) == ["counter_w-0.db", "gauge_livesum_w-0.db"]
    assert _samples(tmp_path)["drill_done_total"] == 12


def test_concurrent_processes_get_distinct_slots(tmp_path):
    children = [_run(tmp_path, mode="hang") for _ in range(3)]
    try:
        slots = {c.stdout.readline().strip() for c in children}
        assert slots == {"w-0", "w-1", "w-2"}
        assert _samples(tmp_path)["drill_busy"] == 3
    finally:
        for c in children:
            c.kill()
            c.wait()
            c.stdout.close()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_process_frees_its_slot_and_its_live_gauge(tmp_path, sig):
    victim = _run(tmp_path, mode="hang")
    assert victim.stdout.readline().strip() == "w-0"
    assert _samples(tmp_path)["drill_busy"] == 1  # alive: its live gauge is exported
    victim.send_signal(sig)
    victim.wait()
    victim.stdout.close()
    gone = _samples(tmp_path)  # the next scrape, before any process takes the slot
    assert gone.get("drill_busy", 0) == 0  # the dead process's live gauge has left
    assert gone["drill_done_total"] == 1  # its count is kept
    assert (tmp_path / "gauge_livesum_w-0.db").exists()  # skipped, not deleted: the folder may be read-only
    successor = _run(tmp_path)
    assert successor.communicate(timeout=30)[0].strip() == "w-0"
    samples = _samples(tmp_path)
    assert samples["drill_done_total"] == 2
    assert samples.get("drill_busy", 0) == 0  # the successor exited too: nobody is busy


def test_only_the_dead_slot_leaves_while_others_live(tmp_path):
    alive, dead = _run(tmp_path, mode="hang"), _run(tmp_path, mode="hang")
    try:
        slots = {alive.stdout.readline().strip(), dead.stdout.readline().strip()}
        assert slots == {"w-0", "w-1"}
        assert _samples(tmp_path)["drill_busy"] == 2
        dead.kill()
        dead.wait()
        samples = _samples(tmp_path)
        assert samples["drill_busy"] == 1 and samples["drill_done_total"] == 2
    finally:
        for c in (alive, dead):
            c.kill()
            c.wait()
            c.stdout.close()


def test_not_in_multiprocess_mode_setup_is_a_no_op(monkeypatch):
    from django_celery_ops import multiprocess as ours

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert ours.setup("x") == ""
