"""slotvalue.SlotValue writes prometheus_client's file layout: the stock MultiProcessCollector reads it exactly.

In the library's suite, so that every cell of the version matrix (prometheus_client 0.21.1 ..
0.26) runs it against that cell's own collector and metric classes.
"""
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values
from prometheus_client.multiprocess import MultiProcessCollector

from django_celery_ops import slotvalue

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def slot(tmp_path, monkeypatch):
    """Metrics created in the test write slot "t-0" files through a fresh SlotValue class."""
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    cls = slotvalue.SlotValue(lambda: "t-0")
    monkeypatch.setattr(values, "ValueClass", cls)
    yield cls
    cls.close_all_files()


def _stock(path) -> dict:
    """{(name, labels): value} as prometheus_client's own MultiProcessCollector merges the files."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(path))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples}


def test_stock_collector_reads_every_kind_exactly(slot, tmp_path):
    c = Counter("sv_requests", "requests", ["view"], registry=None)
    g = Gauge("sv_busy", "busy", multiprocess_mode="livesum", registry=None)
    h = Histogram("sv_seconds", "seconds", buckets=(0.1, 1.0), registry=None)
    c.labels("a").inc(3)
    c.labels("b").inc(0.25)
    g.inc(5)
    g.dec(2)
    for amount in (0.05, 0.5, 0.5, 7.0):
        h.observe(amount)
    got = _stock(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["counter_t-0.db", "gauge_livesum_t-0.db",
                                                          "histogram_t-0.db"]
    assert got[("sv_requests_total", (("view", "a"),))] == 3
    assert got[("sv_requests_total", (("view", "b"),))] == 0.25
    assert got[("sv_busy", ())] == 3
    assert got[("sv_seconds_bucket", (("le", "0.1"),))] == 1
    assert got[("sv_seconds_bucket", (("le", "1.0"),))] == 3
    assert got[("sv_seconds_bucket", (("le", "+Inf"),))] == 4
    assert got[("sv_seconds_sum", ())] == 8.05
    assert got[("sv_seconds_count", ())] == 4


def test_values_stay_exact_after_the_file_grows_past_its_initial_size(slot, tmp_path):
    c = Counter("sv_grow", "grow", ["name"], registry=None)
    first = c.labels("early")
    first.inc()
    names = [f"view-{i:05d}-{'x' * 60}" for i in range(1500)]  # ~150 bytes an entry: past 64 KiB twice
    for i, name in enumerate(names):
        c.labels(name).inc(i + 1)
    first.inc(41)  # written through the mapping taken before the file grew
    c.labels(names[0]).inc(1000)
    assert os.path.getsize(tmp_path / "counter_t-0.db") > 2 * slotvalue.INITIAL_SIZE
    got = _stock(tmp_path)
    assert got[("sv_grow_total", (("name", "early"),))] == 42
    assert got[("sv_grow_total", (("name", names[0]),))] == 1001
    assert all(got[("sv_grow_total", (("name", n),))] == i + 1 for i, n in enumerate(names[1:], 1))


def test_a_value_continues_from_the_file_and_moves_with_the_slot(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    ident = {"id": "t-0"}
    cls = slotvalue.SlotValue(lambda: ident["id"])
    monkeypatch.setattr(values, "ValueClass", cls)
    try:
        c = Counter("sv_moves", "moves", registry=None)
        c.inc(2)
        ident["id"] = "t-1"
        cls.moved()  # as multiprocess.setup() under a new role
        c.inc(5)  # the new slot's file starts at 0: the 2 stay in t-0's file
        assert c._value.get() == 5
    finally:
        cls.close_all_files()
    again = slotvalue.SlotValue(lambda: "t-1")  # a later owner of t-1 continues from its file
    monkeypatch.setattr(values, "ValueClass", again)
    try:
        c = Counter("sv_moves", "moves", registry=None)
        c.inc(1)
        assert c._value.get() == 6
    finally:
        again.close_all_files()
    assert _stock(tmp_path)[("sv_moves_total", ())] == 8


def test_threads_sharing_a_value_lose_no_increment(slot, tmp_path):
    c = Counter("sv_threads", "threads", registry=None)
    inc = slotvalue.inc_of(c)
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter allows
    try:
        threads = [threading.Thread(target=lambda: [inc(1) for _ in range(20000)]) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(0.005)
    assert _stock(tmp_path)[("sv_threads_total", ())] == 160000


def test_observe_of_writes_what_observe_writes(slot, tmp_path):
    h = Histogram("sv_obs", "obs", ["v"], buckets=(0.1, 1.0, 10.0), registry=None)
    fast = slotvalue.observe_of(h.labels("fast"))
    for amount in (0.0, 0.1, 0.2, 1.0, 5.0, 11.0):
        fast(amount)
        h.labels("slow").observe(amount)
    got = _stock(tmp_path)
    assert {k[0]: v for k, v in got.items() if ("v", "fast") in k[1]} == \
        {k[0]: v for k, v in got.items() if ("v", "slow") in k[1]}


_OWNER = textwrap.dedent("""
    import os, sys
    from django_celery_ops import multiprocess
    multiprocess.setup("w")
    from prometheus_client import Counter
    c = Counter("sv_owner", "owner", ["name"])
    for i in range(int(sys.argv[2])):
        c.labels(f"{sys.argv[1]}-{i:04d}-" + "y" * 80).inc()
    c.labels("shared").inc(int(sys.argv[3]))
    if os.fork() == 0:  # a forked child writes its own slot, starting from that slot's values
        c.labels("shared").inc(100)
        os._exit(0)
    os.wait()
    print(multiprocess.setup("w"), flush=True)
    sys.stdin.readline()
""")


def test_stock_collector_reads_a_slot_exactly_after_its_owner_was_killed(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": ROOT}

    def owner(prefix, keys, shared):
        return subprocess.Popen([sys.executable, "-c", _OWNER, prefix, str(keys), str(shared)], env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    first = owner("a", 10, 1)
    assert first.stdout.readline().strip() == "w-0"
    first.send_signal(signal.SIGKILL)
    first.wait()
    first.stdin.close()
    first.stdout.close()
    # The successor takes w-0 over, continues its counts and grows the file past its initial size.
    second = owner("b", 800, 2)
    try:
        assert second.stdout.readline().strip() == "w-0"
        got = _stock(tmp_path)
    finally:
        second.stdin.close()
        second.wait()
        second.stdout.close()
    assert os.path.getsize(tmp_path / "counter_w-0.db") > slotvalue.INITIAL_SIZE
    assert got[("sv_owner_total", (("name", "shared"),))] == 1 + 2 + 100 + 100  # two owners, two forked children
    counted = {dict(k[1])["name"] for k, v in got.items() if k[0] == "sv_owner_total" and v == 1}
    assert counted == {f"a-{i:04d}-" + "y" * 80 for i in range(10)} | {f"b-{i:04d}-" + "y" * 80 for i in range(800)}


@pytest.mark.parametrize("size", [13, slotvalue.INITIAL_SIZE + 3])
def test_a_slot_file_whose_size_is_not_a_multiple_of_8_is_extended_when_opened(slot, tmp_path, size):
    """memoryview.cast("d") refuses such a mapping: a truncated or foreign file is padded with zeros."""
    path = tmp_path / "counter_t-0.db"
    path.write_bytes((8).to_bytes(4, "little").ljust(size, b"\0"))  # a header and no entry, then odd bytes
    c = Counter("sv_odd", "odd", registry=None)
    c.inc(3)
    c.inc(0.5)
    assert os.path.getsize(path) % 8 == 0 and os.path.getsize(path) >= size
    assert _stock(tmp_path)[("sv_odd_total", ())] == 3.5


def test_doubles_of_a_mapping_not_a_multiple_of_8_fall_back_to_packed_writes(tmp_path):
    import mmap

    path = tmp_path / "odd.bin"
    path.write_bytes(bytes(21))
    with open(path, "r+b") as f:
        mm = mmap.mmap(f.fileno(), 21)
    doubles = slotvalue._doubles(mm)
    doubles[1] = 2.5
    assert doubles[1] == 2.5 and mm[8:16] == slotvalue._DOUBLE.pack(2.5)
    mm.close()
