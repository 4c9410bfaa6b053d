"""The incremental slot reader serves exactly what prometheus_client's MultiProcessCollector would.

The reference is multiprocess.SlotCollector: MultiProcessCollector with the dead-slot rule (live
gauges of a slot whose lock is free are left out). Values are multiples of 1/4, so every sum is
exact whatever order the files are added in (MultiProcessCollector adds in directory order).
"""
import fcntl
import os
import random
import resource
import signal
import struct
import subprocess
import sys
import textwrap
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from django_celery_ops import exposition, multiprocess
from django_celery_ops.slotreader import SlotReader
from tests.support.stack import ROOT

MODES = ["all", "liveall", "sum", "livesum", "max", "livemax", "min", "livemin", "mostrecent", "livemostrecent"]
ODD = ['plain', 'quote"d', 'back\\slash', 'new\nline', 'ünï', '']


def reference(path) -> str:
    registry = CollectorRegistry()
    multiprocess.SlotCollector(registry, path=str(path))
    return generate_latest(registry).decode()


def served(reader) -> str:
    return exposition.generate([reader]).decode()


def parsed(text: str) -> dict:
    """{family: (type, help, {(sample, labels): value})} as prometheus_client's parser reads it."""
    out = {}
    for family in text_string_to_metric_families(text):
        samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in family.samples}
        assert len(samples) == len(family.samples), f"duplicate series in {family.name}"
        out[family.name] = (family.type, family.documentation, samples)
    return out


def blocks(text: str) -> dict:
    """{HELP+TYPE header: sorted sample lines}: the exact bytes, whatever the family and line order."""
    out, header = {}, None
    for line in text.splitlines():
        if line.startswith("# HELP"):
            header = line
            out[header] = []
        elif line.startswith("# TYPE"):
            out[header].insert(0, line)
        else:
            out[header].append(line)
    return {h: sorted(lines) for h, lines in out.items()}


def assert_same(path, reader):
    want, got = reference(path), served(reader)
    assert parsed(got) == parsed(want)
    assert blocks(got) == blocks(want)


class Files:
    """Slot files written as prometheus_client's MultiProcessValue writes them (MmapedDict)."""

    def __init__(self, path, rnd):
        self.path, self.rnd, self.maps, self.families = path, rnd, {}, {}

    def put(self, name, key, value, timestamp=0.0):
        m = self.maps.get(name)
        if m is None:
            m = self.maps[name] = MmapedDict(os.path.join(self.path, name))
        m.write_value(key, value, timestamp)

    def value(self):
        return self.rnd.randint(-8, 4000) / 4

    def close(self):
        for n in list(self.maps):
            self.maps.pop(n).close()


@pytest.fixture
def files(tmp_path):
    opened = Files(tmp_path, random.Random(0))
    yield opened
    opened.close()


def labels(rnd, n):
    names = rnd.sample(["view", "method", "status", "name", "queue_name", "hostname"], n)
    return names, [rnd.choice(ODD) + str(rnd.randint(0, 3)) for _ in names]


def write_random(files: Files, rnd, slots, families=12, series=6, first=0):
    """Random families of every type and gauge mode over `slots`, some series missing in some slots."""
    for f in range(first, first + families):
        if f not in files.families:  # a family keeps its type, mode, help and buckets
            typ = rnd.choice(["counter", "summary", "histogram", "gauge", "gauge"])
            files.families[f] = (typ, f"fam{f}_{typ}", rnd.choice(["plain help", 'help with \\ and "\n newline']),
                                 rnd.choice(MODES),
                                 sorted(rnd.sample([0.005, 0.1, 0.5, 1.0, 2.5, 10.0, 1e6, 2.5e7], 4)) + [float("inf")])
        typ, metric, doc, mode, buckets = files.families[f]
        label_sets = [labels(rnd, rnd.randint(0, 3)) for _ in range(series)]
        for slot in slots:
            for names, values in label_sets:
                if rnd.random() < 0.2:
                    continue
                if typ == "counter":
                    files.put(f"counter_{slot}.db", mmap_key(metric, metric + "_total", names, values, doc),
                              files.value())
                elif typ == "summary":
                    for suffix in ("_count", "_sum"):
                        files.put(f"summary_{slot}.db", mmap_key(metric, metric + suffix, names, values, doc),
                                  files.value())
                elif typ == "histogram":
                    for le in buckets:
                        files.put(f"histogram_{slot}.db", mmap_key(metric, metric + "_bucket", names + ["le"],
                                                                   values + [exposition.float_to_go(le)], doc),
                                  rnd.randint(0, 50))
                    files.put(f"histogram_{slot}.db", mmap_key(metric, metric + "_sum", names, values, doc),
                              files.value())
                else:
                    ts = rnd.choice([0.0, 0.0, rnd.randint(1, 10 ** 6) + 0.5])
                    files.put(f"gauge_{mode}_{slot}.db", mmap_key(metric, metric, names, values, doc),
                              files.value(), ts)


def hold(path, slot):
    """Hold a slot's lock as its living owner would; returns the fd (close it: the slot is dead)."""
    fd = os.open(os.path.join(path, f"{slot}.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


@pytest.mark.parametrize("seed", range(6))
def test_randomised_files_are_served_as_multiprocess_collector_serves_them(tmp_path, files, seed):
    rnd = files.rnd = random.Random(seed)
    slots = [f"w-{i}" for i in range(rnd.randint(1, 5))]
    locks = {slot: hold(tmp_path, slot) for slot in slots}
    write_random(files, rnd, slots)
    reader = SlotReader(str(tmp_path))
    assert_same(tmp_path, reader)

    # values change, keys are appended (files grow past their first 64 KiB: remapped), a slot dies
    for step in range(3):
        for m in files.maps.values():
            for key in list(m._positions)[: rnd.randint(0, 10)]:
                m.write_value(key, files.value(), rnd.randint(1, 10 ** 6))
        write_random(files, rnd, rnd.sample(slots, max(1, len(slots) // 2)), families=4 + 8 * step, series=40,
                     first=rnd.choice([0, 100 * (step + 1)]))  # new series of old families, or new families
        if step == 1:
            os.close(locks.pop(slots[0]))  # its live gauges leave, its counters stay
        assert_same(tmp_path, reader)
    assert max(os.path.getsize(p) for p in tmp_path.glob("*.db")) > 1 << 16
    files.close()


def test_files_summed_a_few_at_a_time_stay_exact(tmp_path, files, monkeypatch):
    """The summed values are gathered in groups of files (memory ~ the series count): each group adds in order."""
    from django_celery_ops import slotreader

    monkeypatch.setattr(slotreader, "GROUP_ENTRIES", 1)
    rnd = files.rnd = random.Random(11)
    slots = [f"w-{i}" for i in range(6)]
    write_random(files, rnd, slots, families=10, series=8)
    reader = SlotReader(str(tmp_path))
    assert_same(tmp_path, reader)
    groups, nslots = reader._plan[1][0][1], len(reader._slot_info)
    assert len(groups) > 2 and all(len(dest) - (nslots if i else 0) <= max(nslots, 1) or len(members) == 1
                                   for i, (members, dest) in enumerate(groups))


def test_groups_of_files_add_as_one_sequential_sum(tmp_path, files, monkeypatch):
    """Values that do not sum exactly: however the files are grouped, the sum is ((0 + f0) + f1) + f2,
    so moving a group boundary (new series remake the plan) never lowers a counter by an ulp."""
    from django_celery_ops import slotreader

    key = mmap_key("c", "c_total", [], [], "c")
    files.put("counter_w-0.db", mmap_key("d", "d_total", [], [], "d"), 0.0)  # two entries: w-0 fills a group of 2
    for i, value in enumerate([2.0 ** 53, 1.0, 1.0]):
        files.put(f"counter_w-{i}.db", key, value)
    want = ((0.0 + 2.0 ** 53) + 1.0) + 1.0  # 2 ** 53: each 1.0 rounds away; 2 ** 53 + (1.0 + 1.0) would not
    for entries, groups in ((1 << 16, 1), (2, 2)):  # (2, 2): [w-0], [w-1, w-2]
        monkeypatch.setattr(slotreader, "GROUP_ENTRIES", entries)
        reader = SlotReader(str(tmp_path))
        assert f"c_total {exposition.float_to_go(want)}" in served(reader).splitlines()
        assert len(reader._plan[1][0][1]) == groups


def test_a_malformed_key_is_left_out_and_the_keys_after_it_are_served(tmp_path, files):
    """A key that decodes to the wrong shape (a dict as a label value, a list as a name) is not served;
    the entries written after it are, at this scrape and the next."""
    files.put("counter_w-0.db", mmap_key("a", "a_total", [], [], "a"), 1.0)
    reader = SlotReader(str(tmp_path))
    assert "a_total 1.0" in served(reader)
    files.put("counter_w-0.db", '["y", "y_total", {"a": {"b": 1}}, "h"]', 5.0)
    files.put("counter_w-0.db", '[["z"], "z_total", {}, "h"]', 6.0)
    files.put("counter_w-0.db", mmap_key("b", "b_total", [], [], "b"), 2.0)
    for _ in range(2):
        text = served(reader)
        assert "a_total 1.0" in text and "b_total 2.0" in text and "y_total" not in text and "z_total" not in text


def test_a_file_it_cannot_read_is_left_out_and_logged_once(tmp_path, files, caplog):
    """A folder named like a slot file: the other files are served, one warning names it."""
    files.put("counter_w-0.db", mmap_key("a", "a_total", [], [], "a"), 1.0)
    (tmp_path / "counter_w-1.db").mkdir()
    reader = SlotReader(str(tmp_path))
    with caplog.at_level("WARNING", logger="django_celery_ops.slotreader"):
        assert "a_total 1.0" in served(reader) and "a_total 1.0" in served(reader)
    assert [r.getMessage() for r in caplog.records if "counter_w-1.db" in r.getMessage()] != []
    assert len([r for r in caplog.records if "counter_w-1.db" in r.getMessage()]) == 1


def test_files_it_cannot_map_are_read_with_pread_and_stay_exact(tmp_path, files, monkeypatch):
    """Past the process's descriptor or mapping limit (a mapping keeps a descriptor) files are read each scrape."""
    from django_celery_ops import slotreader

    monkeypatch.setattr(slotreader, "_map", lambda fd, size: None)
    rnd = files.rnd = random.Random(9)
    write_random(files, rnd, ["w-0", "w-1"], families=8)
    files.put("counter_w-0.db", mmap_key("long", "long_total", ["view"], ["v" * 500], "a long key"), 2.0)
    reader = SlotReader(str(tmp_path))
    assert_same(tmp_path, reader)
    write_random(files, rnd, ["w-0", "w-1"], families=8, first=50)
    assert_same(tmp_path, reader)
    assert all(f.mm is None for f in reader._files.values())


def test_mappings_stay_within_half_the_descriptor_limit(tmp_path, files):
    """A mapping keeps a descriptor: past the reader's budget files are read with pread, and exactly."""
    rnd = files.rnd = random.Random(5)
    write_random(files, rnd, [f"w-{i}" for i in range(4)], families=12)
    reader = SlotReader(str(tmp_path))
    reader.max_mappings = 3
    assert_same(tmp_path, reader)
    assert sum(f.mm is not None for f in reader._files.values()) == 3 < len(reader._files)
    write_random(files, rnd, [f"w-{i}" for i in range(6)], families=12, first=20)  # more files, grown files
    assert_same(tmp_path, reader)
    assert sum(f.mm is not None for f in reader._files.values()) <= 3
    assert 0 < SlotReader(str(tmp_path)).max_mappings <= resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2


def test_a_key_twice_in_an_all_file_serves_its_last_entry(tmp_path):
    """Written twice in one file (a rewrite): the later entry is the value, as MultiProcessCollector reads it."""
    key = mmap_key("inflight", "inflight", [], [], "x").encode()
    padded = key + b" " * (8 - (len(key) + 4) % 8)
    entries = b"".join(struct.pack(f"<i{len(padded)}sdd", len(key), padded, value, 0.0) for value in (1.0, 7.0, 3.0))
    data = struct.pack("<ii", 8 + len(entries), 0) + entries
    (tmp_path / "gauge_all_w-0.db").write_bytes(data + bytes(4096))
    reader = SlotReader(str(tmp_path))
    assert 'inflight{pid="w-0"} 3.0' in served(reader)
    assert_same(tmp_path, reader)


def test_a_torn_entry_is_left_for_the_next_scrape(tmp_path, files):
    """`used` covers a half-written entry (a writer killed mid-append): what is complete is served, exactly."""
    files.put("counter_w-0.db", mmap_key("done", "done_total", [], [], "d"), 4.0)
    files.put("counter_w-0.db", mmap_key("late", "late_total", ["view"], ["v" * 40], "l"), 2.0)
    files.close()
    path = tmp_path / "counter_w-0.db"
    data = bytearray(path.read_bytes())
    used = int.from_bytes(data[:4], "little")
    data[:4] = (used - 8).to_bytes(4, "little")  # the last entry's timestamp is not covered: torn
    path.write_bytes(bytes(data))
    reader = SlotReader(str(tmp_path))
    text = served(reader)
    assert "done_total 4.0" in text and "late_total" not in text
    data[:4] = used.to_bytes(4, "little")  # the writer finished
    with open(path, "r+b") as f:
        f.write(bytes(data[:4]))
    assert 'late_total{view="' + "v" * 40 + '"} 2.0' in served(reader)
    assert_same(tmp_path, reader)


def test_the_same_text_as_generate_latest_for_identical_file_order(tmp_path, files):
    """One slot: the reader's bytes are generate_latest's, family for family and line for line."""
    rnd = files.rnd = random.Random(7)
    write_random(files, rnd, ["w-0"], families=10, series=4)
    files.close()
    assert blocks(served(SlotReader(str(tmp_path)))) == blocks(reference(tmp_path))


def test_a_replaced_or_truncated_file_is_indexed_again(tmp_path, files):
    rnd = files.rnd = random.Random(3)
    write_random(files, rnd, ["w-0", "w-1"], families=6)
    for view in ("a", "b"):
        files.put("counter_w-9.db", mmap_key("old", "old_total", ["view"], [view], "old"), 3.0)
    files.close()
    reader = SlotReader(str(tmp_path))
    assert_same(tmp_path, reader)
    target = tmp_path / "counter_w-9.db"
    target.unlink()  # replaced: another inode, other keys at the old offsets
    m = MmapedDict(str(target))
    m.write_value(mmap_key("other", "other_total", ["x"], ["1"], "new"), 5.0, 0.0)
    m.close()
    assert_same(tmp_path, reader)
    assert "old_total" not in served(reader) and "other_total" in served(reader)
    with open(target, "r+b") as f:  # truncated in place and rewritten, same inode
        f.truncate(0)
    m = MmapedDict(str(target))
    m.write_value(mmap_key("third", "third_total", [], [], "after truncation"), 2.0, 0.0)
    m.close()
    assert_same(tmp_path, reader)
    assert "third_total 2.0" in served(reader)


def test_a_dead_slots_live_gauges_leave_and_return_with_a_new_owner(tmp_path, files):
    fd = hold(tmp_path, "w-0")
    files.put("gauge_livesum_w-0.db", mmap_key("busy", "busy", [], [], "busy"), 1.0)
    files.put("gauge_liveall_w-0.db", mmap_key("inflight", "inflight", [], [], "x"), 3.0)
    files.put("counter_w-0.db", mmap_key("done", "done_total", [], [], "done"), 4.0)
    reader = SlotReader(str(tmp_path))
    assert 'busy 1.0' in served(reader) and 'inflight{pid="w-0"} 3.0' in served(reader)
    os.close(fd)
    text = served(reader)
    assert "busy" not in text and "inflight" not in text and "done_total 4.0" in text
    assert_same(tmp_path, reader)
    fd = hold(tmp_path, "w-0")  # a new owner: mark_process_dead removed the files, it writes its own
    files.close()
    for name in ("gauge_livesum_w-0.db", "gauge_liveall_w-0.db"):
        os.remove(tmp_path / name)
    files.put("gauge_livesum_w-0.db", mmap_key("busy", "busy", [], [], "busy"), 2.0)
    files.close()
    assert "busy 2.0" in served(reader)
    assert_same(tmp_path, reader)
    os.close(fd)


class Fold:
    """A series filter as cardinality.SeriesPolicy: fold views beyond the first two, drop host h-gone."""

    def __init__(self):
        self.version, self.kept, self.drop, self.calls = 0, [], {"h-gone"}, 0

    def __call__(self, name, labels):
        self.calls += 1
        if labels.get("hostname") in self.drop:
            return None
        out = dict(labels)
        if "view" in out:
            if out["view"] not in self.kept and len(self.kept) < 2:
                self.kept.append(out["view"])
            if out["view"] not in self.kept:
                out["view"] = "__other__"
        return out


def test_a_series_filter_folds_and_drops_once_per_key_and_again_on_a_new_version(tmp_path, files):
    for slot in ("w-0", "w-1"):
        for view in ("a", "b", "c", "d"):
            files.put(f"counter_{slot}.db", mmap_key("req", "req_total", ["view"], [view], "r"), 1.0)
            for le, n in (("0.5", 1.0), ("+Inf", 2.0)):
                files.put(f"histogram_{slot}.db", mmap_key("lat", "lat_bucket", ["view", "le"], [view, le], "l"), n)
            files.put(f"histogram_{slot}.db", mmap_key("lat", "lat_sum", ["view"], [view], "l"), 0.25)
        for host in ("h-up", "h-gone"):
            files.put(f"counter_{slot}.db", mmap_key("task", "task_total", ["hostname"], [host], "t"), 1.0)
    files.close()
    policy = Fold()
    reader = SlotReader(str(tmp_path), series_filter=policy)
    got = parsed(served(reader))
    assert got["req"][2] == {("req_total", (("view", "a"),)): 2.0, ("req_total", (("view", "b"),)): 2.0,
                             ("req_total", (("view", "__other__"),)): 4.0}
    assert got["lat"][2][("lat_bucket", (("le", "0.5"), ("view", "__other__")))] == 4.0  # 2 views x 2 slots
    assert got["lat"][2][("lat_bucket", (("le", "+Inf"), ("view", "__other__")))] == 12.0  # cumulative
    assert got["lat"][2][("lat_count", (("view", "__other__"),))] == 12.0
    assert got["lat"][2][("lat_sum", (("view", "__other__"),))] == 1.0
    assert got["task"][2] == {("task_total", (("hostname", "h-up"),)): 2.0}
    calls = policy.calls
    assert calls == 4 + 12 + 2  # once per distinct key, not per file or per scrape
    served(reader)
    assert policy.calls == calls
    policy.drop, policy.version = set(), 1  # the host came back
    got = parsed(served(reader))
    assert got["task"][2][("task_total", (("hostname", "h-gone"),))] == 2.0
    assert policy.calls == 2 * calls


_WRITER = textwrap.dedent("""
    import os, sys, time
    from django_celery_ops import multiprocess
    multiprocess.setup(sys.argv[1])
    from prometheus_client import Counter, Gauge, Histogram
    done = Counter("drill_done", "Work done.", ["view"])
    busy = Gauge("drill_busy", "Busy now.", multiprocess_mode="livesum")
    took = Histogram("drill_seconds", "Time taken.", ["view"], buckets=(0.25, 1.0))
    busy.set(1)
    n = int(sys.argv[2])
    for i in range(n if n >= 0 else 10 ** 9):
        view = f"{sys.argv[3]}{i % 7}"
        done.labels(view).inc()
        took.labels(view).observe((i % 5) / 4)
    print("done", flush=True)
    time.sleep(60)
""")


def _writer(path, n, views="v"):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(path)}
    return subprocess.Popen([sys.executable, "-c", _WRITER, "w", str(n), views], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, text=True)


def test_exact_under_recycling_and_sigkill_of_real_writers_while_scraping(tmp_path):
    """Writers run, finish, are SIGKILLed mid-count and replaced, while a long-lived reader scrapes.

    Counters never go back between scrapes; once the writers stop, the reader serves exactly what
    MultiProcessCollector reads, and the finished writers' counts exactly."""
    reader, last, scrapes = SlotReader(str(tmp_path)), {}, 0

    def scrape():
        nonlocal scrapes
        got = parsed(served(reader))
        scrapes += 1
        for family in ("drill_done", "drill_seconds"):
            for key, value in got.get(family, (None, None, {}))[2].items():
                assert value >= last.get(key, 0), (key, value, last.get(key))
                last[key] = value
        return got

    finished = [_writer(tmp_path, 700) for _ in range(2)]
    runaway = [_writer(tmp_path, -1, views="k") for _ in range(2)]  # count until killed
    recycled = []
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            scrape()
        for proc in finished:
            assert proc.stdout.readline().strip() == "done"
        for proc in runaway:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        scrape()
        recycled = [_writer(tmp_path, 700) for _ in range(2)]  # they take the dead slots and continue them
        deadline = time.monotonic() + 1
        while time.monotonic() < deadline:
            scrape()
        for proc in recycled:
            assert proc.stdout.readline().strip() == "done"
        scrape()
        assert "drill_busy 4.0" in served(reader)  # two finished and two recycled hold their slots
        for proc in finished + recycled:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        text = served(reader)
        assert_same(tmp_path, reader)
        assert "drill_busy" not in text  # every owner is dead: the live gauge leaves
        done, took = scrape()["drill_done"][2], scrape()["drill_seconds"][2]
        assert sum(v for (_, lab), v in done.items() if lab[0][1].startswith("v")) == 4 * 700
        assert sum(v for (n, lab), v in took.items() if n.endswith("_count") and lab[0][1].startswith("v")) == 4 * 700
        assert sum(v for (_, lab), v in done.items() if lab[0][1].startswith("k")) > 0
        assert scrapes > 5
        assert sorted(p.name for p in tmp_path.glob("w-*.lock")) == [f"w-{i}.lock" for i in range(4)]  # reused
    finally:
        for proc in finished + runaway + recycled:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()


def _write_counts(path, slots, views):
    files = Files(path, random.Random(0))
    for slot in slots:
        for v in range(views):
            files.put(f"counter_{slot}.db", mmap_key("django_http_requests", "django_http_requests_total",
                                                     ["view", "method"], [f"shop.views.catalogue.view_{v}", "GET"],
                                                     "Requests."), 1.0)
    files.close()


_MEMORY = textwrap.dedent("""
    import os, sys, tracemalloc
    from django_celery_ops import exposition
    from django_celery_ops.slotreader import SlotReader

    reader = SlotReader(sys.argv[1])
    with open(os.devnull, "wb") as out:
        exposition.write(out, [reader])  # the first scrape builds the index
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        exposition.write(out, [reader])
        exposition.write(out, [reader], gzip=True)
        print(tracemalloc.get_traced_memory()[1] - base)
""")


def test_a_scrape_needs_under_200_bytes_per_series_beyond_the_index(tmp_path):
    """Peak of the memory a scrape allocates (the values, the chunks it streams), not the whole body."""
    views = 20000
    _write_counts(tmp_path, ["w-0", "w-1", "w-2"], views)
    out = subprocess.run([sys.executable, "-c", _MEMORY, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    peak = int(out.stdout.strip())
    assert peak / views < 200, f"{peak / views:.0f} bytes per series"
