"""Incremental aggregation of the slot files, for the long-lived metrics processes.

prometheus_client's MultiProcessCollector reads and JSON-decodes every key of every file at
every scrape, so a scrape costs (keys x processes) decodes even when nothing new was counted.
A SlotReader lives as long as its server and keeps, per file, an index of the entries it has
seen (key id, offset of the value) and a read-only mapping of the file; a scrape parses only
the entries appended since (the layout is append-only: values never move) and gathers the
float64 values at their offsets with numpy, one call per file. A plan made when the set of
entries changes (entry -> series slot) sums every file's values into the output series with
bincount, a few files at a time, each group adding to the sums so far: one sequential sum in
file order and entry order, as MultiProcessCollector adds them (files in name order here; it
takes the directory's order, so a float sum's last bits may differ from its). Histogram buckets
are made cumulative per label set with one cumsum; the text lines' prefixes are rendered once
per series. Semantics are MultiProcessCollector's, file for file:

- counters, summaries, histogram buckets and _sum are summed over the files; histogram buckets
  are then made cumulative over `le` and _count is the +Inf total;
- gauges follow their file's multiprocess mode: all/liveall keep one series per slot (label
  `pid` = the slot id), sum/livesum add, max/min keep the extreme, mostrecent the value with
  the latest timestamp (none at all while every timestamp is 0);
- the live gauges of a slot whose lock no process holds are left out (multiprocess.SlotCollector);
- a file replaced (another inode), shorter than before, or whose first or last indexed entry
  changed (truncated and rewritten in place) is indexed again from its start; one grown past
  its mapping is mapped again. A mapping keeps a file descriptor: past the process's limit (or
  when mapping fails) a file is read with pread at each scrape instead, with the same result;
  a file that cannot be read at all (a folder named x.db, no permission) is left out, logged
  once; a key that is not [str, str, {str: str}, str] is not served, and the keys after it are.
  No writer shrinks a slot file (prometheus_client and slotvalue.py only grow them; cleaning a
  folder unlinks them, which leaves the mapping valid): a file truncated by hand in the instant
  a scrape reads it would fault the reader (SIGBUS), as it would any reader of a mapping.

The index build (the first scrape of a fresh server, or after many new series) runs with the
cycle collector paused, and one that doubled the series count then freezes what it made
(gc.freeze): millions of small tuples that live as long as the server, which the collector would
otherwise walk at every full collection. Smaller growth stays with the collector, so freezes are
few (a cycle that is garbage at one of them is kept for good: a few objects, a few times).

Two departures: a gauge whose files disagree on the mode (code changed between deploys) is
merged per file mode, where MultiProcessCollector applies the mode of whichever file it read
last; and a max/min gauge skips a NaN value (numpy's fmax/fmin), where MultiProcessCollector
keeps a NaN it read first and ignores one it reads later.

An optional `series_filter` (cardinality.SeriesPolicy) is asked once per key what to serve
(`series_filter(sample_name, labels) -> labels | None`); every key is asked again when its
`.version` changes. Keys that end up with the same labels are merged as files are.

    reader = SlotReader("/var/run/prometheus/web")
    exposition.write(sys.stdout.buffer, [reader])
"""
from __future__ import annotations

import array
import gc
import itertools
import json
import logging
import mmap
import os
import resource
import struct
import threading
from bisect import bisect_right

import numpy as np

from . import exposition
from .multiprocess import _slot_alive  # the same liveness rule as the reference collector

log = logging.getLogger(__name__)

TYPES = ("counter", "gauge", "histogram", "summary")
_SUM, _MAX, _MIN, _LAST, _RECENT = range(5)
_KINDS = {"sum": _SUM, "livesum": _SUM, "max": _MAX, "livemax": _MAX, "min": _MIN, "livemin": _MIN,
          "all": _LAST, "liveall": _LAST, "mostrecent": _RECENT, "livemostrecent": _RECENT}
_INT = struct.Struct("<i")
_DROPPED = -1
FREEZE_MIN = 10_000  # series made since the last gc.freeze() before another is worth it
_STR = {str}  # the only type a key's label values may have (prometheus_client writes nothing else)
GROUP_ENTRIES = 1 << 16  # summed values gathered at once: at most this many, or as many as there are series
_EMPTY = np.zeros(0, dtype=np.intp)
_decode = json.JSONDecoder().decode  # json.loads without its per-call wrapper (keys are UTF-8 text)


class _File:
    """What the reader knows of one .db file: its entries (key id, value index) up to `used`, and its mapping."""

    __slots__ = ("name", "typ", "kind", "ident", "ino", "used", "keys", "vidx", "slots", "take", "dest", "marks",
                 "serial", "mm", "values")

    _serials = itertools.count()

    def __init__(self, name: str, typ: str, mode: str, ident: str, ino: int):
        self.name, self.typ, self.ident, self.ino = name, typ, ident, ino
        self.serial = next(self._serials)  # the plan is remade when a file is indexed anew
        self.kind = _KINDS.get(mode, _SUM) if typ == "gauge" else _SUM
        self.used = 8
        self.keys = array.array("i")  # key id per entry, in file order
        self.vidx = array.array("q")  # offset of the entry's value / 8
        self.slots = array.array("i")  # output slot per entry (_DROPPED: filtered out)
        self.take = self.dest = _EMPTY  # value indexes and their slots, entries not dropped (numpy, for the gather)
        self.marks: list[tuple[int, bytes]] = []  # (offset, length+key) of the first and last entry indexed
        self.mm = None  # the read-only mapping, kept between scrapes (None: read with pread)
        self.values = None  # the file as float64 (a view of the mapping, or of this scrape's bytes)

    def arrays(self) -> None:
        slots = np.frombuffer(self.slots, dtype=np.int32)
        kept = slots != _DROPPED
        self.take = np.frombuffer(self.vidx, dtype=np.int64)[kept].astype(np.intp)
        self.dest = slots[kept].astype(np.intp)
        if self.kind == _LAST and len(np.unique(self.dest)) < len(self.dest):
            # A key twice in one file: the last entry wins, as in MultiProcessCollector (numpy's
            # assignment through repeated indexes promises no order).
            _, first_from_end = np.unique(self.dest[::-1], return_index=True)
            last = np.sort(len(self.dest) - 1 - first_from_end)
            self.take, self.dest = self.take[last], self.dest[last]


def _parse_name(name: str):
    """(type, mode, slot id) of `<type>_<slot>.db` / `gauge_<mode>_<slot>.db`, or None."""
    typ, _, rest = name[:-3].partition("_")
    if typ not in TYPES or not rest:
        return None
    mode = ""
    if typ == "gauge":
        mode, _, rest = rest.partition("_")  # modes hold no "_"
        if mode not in _KINDS or not rest:
            return None
    return typ, mode, rest


def _walk(buf, pos: int, used: int):
    """(keys, value indexes, end) of the complete entries from `pos` below `used` (prometheus_client's layout)."""
    keys, vidx, unpack = [], [], _INT.unpack_from
    add_key, add_vidx = keys.append, vidx.append
    while pos + 4 <= used:
        klen = unpack(buf, pos)[0]
        size = klen + 28 - (klen + 4) % 8  # length, key padded to 8, value, timestamp
        if klen < 0 or pos + size > used:
            break  # torn or corrupt: keep what is complete, look again next scrape
        add_key(buf[pos + 4:pos + 4 + klen])
        add_vidx((pos + size - 16) >> 3)
        pos += size
    return keys, vidx, pos


def _decode_keys(keys: list[bytes]) -> list:
    """Each key's JSON, or None where it does not decode; one decoder call for them all when they all do."""
    try:
        decoded = _decode("[" + b",".join(keys).decode("utf-8") + "]")
        if len(decoded) == len(keys):
            return decoded
    except (ValueError, UnicodeDecodeError):
        pass
    out = []
    for key in keys:
        try:
            out.append(_decode(key.decode("utf-8")))
        except (ValueError, UnicodeDecodeError):
            out.append(None)
    return out


def _max_map_count() -> int:
    """The kernel's limit of mappings per process (vm.max_map_count; 65530 by default)."""
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65530


def _map(fd: int, size: int):
    """A read-only mapping of the file's first `size` bytes, or None when the process cannot map more."""
    try:
        return mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ)
    except (OSError, ValueError):  # EMFILE / ENOMEM (a mapping keeps a descriptor): read this file with pread
        return None


class SlotReader:
    """Serve the merged slot files of one folder, rereading only values at each collect (thread-safe)."""

    def __init__(self, path: str, series_filter=None):
        self.path, self.series_filter = path, series_filter
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}
        self._key_ids: dict[bytes, int] = {}
        self._parsed: list = []  # key id -> (metric name, sample name, label items) or None (undecodable)
        self._families: dict[str, tuple[str, str]] = {}  # metric name -> (type, help), first seen
        self._version = None  # the filter version the slots were made with
        self._reset_slots()
        self._plan = None  # (signature, recipe)
        self._mapped = 0
        self._warned: set[str] = set()  # unreadable files already logged
        self._frozen_at = 0  # series count at the last gc.freeze()
        # A mapping keeps a descriptor and takes an entry of the kernel's map table: map at most half of
        # either limit, read the rest with pread.
        self.max_mappings = max(0, min(resource.getrlimit(resource.RLIMIT_NOFILE)[0], _max_map_count()) // 2 - 32)

    def _reset_slots(self) -> None:
        self._slot_of: dict[tuple, int] = {}  # series key -> slot
        self._slot_info: list[tuple] = []  # slot -> (metric, sample, labels, le, pid, kind)
        self._by_group: dict[tuple, dict[int, int]] = {}  # (kind, pid) -> {key id: slot}
        self._prefixes: dict[int, str] = {}  # slot -> its line's prefix
        self._counts: dict[tuple, str] = {}  # (histogram, labels) -> its _count line's prefix

    # --- reading ---------------------------------------------------------------------------
    def _open(self, name: str, typ: str, mode: str, ident: str) -> _File | None:
        """The file, mapped and indexed up to its `used` now; None when it is gone or unreadable now."""
        try:
            fd = os.open(os.path.join(self.path, name), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None  # removed since the listing (mark_process_dead of a live gauge file)
        except OSError as exc:
            return self._unreadable(name, exc)
        try:
            st = os.fstat(fd)
            f = old = self._files.get(name)
            if f is None or f.ino != st.st_ino or (f.mm is not None and st.st_size < len(f.mm)):
                f = _File(name, typ, mode, ident, st.st_ino)  # new, replaced or shrunk
            if f.mm is not None and st.st_size > len(f.mm):
                f.mm = None  # grown: map it whole again (values never move)
            if old is not None and old.mm is not None and f.mm is not old.mm:
                self._mapped -= 1  # let go with the old _File (or its old length)
            if f.mm is None and st.st_size >= 8 and self._mapped < self.max_mappings:
                f.mm = _map(fd, st.st_size)
                self._mapped += f.mm is not None
            buf = f.mm if f.mm is not None else os.pread(fd, st.st_size, 0)
        except OSError as exc:  # not a regular file (a folder named x.db), or a read error
            return self._unreadable(name, exc)
        finally:
            os.close(fd)  # a mapping keeps its own descriptor
        if len(buf) < 8:
            return None
        used = min(_INT.unpack_from(buf, 0)[0], len(buf))
        if used < f.used or not all(buf[o:o + len(raw)] == raw for o, raw in f.marks):
            f = _File(name, typ, mode, ident, f.ino)  # truncated and rewritten in place: index it again
            f.mm = buf if isinstance(buf, mmap.mmap) else None
        if used > f.used:
            self._index(buf, f, used)
        f.values = np.frombuffer(buf, dtype="<f8", count=len(buf) // 8)
        self._files[name] = f
        return f

    def _unreadable(self, name: str, exc: OSError) -> None:
        """Leave out a file that cannot be read now (the rest is served); say so once per file."""
        if name not in self._warned:
            self._warned.add(name)
            log.warning("slot file %s/%s is left out: it cannot be read (%s)", self.path, name, exc)
        return None

    def _index(self, buf, f: _File, used: int) -> None:
        """Index the entries between f.used and `used`."""
        keys, vidx, end = _walk(buf, f.used, used)
        if not keys:
            return
        get = self._key_ids.get
        kids = list(map(get, keys))
        if None in kids:
            fresh = list(dict.fromkeys(k for k, kid in zip(keys, kids) if kid is None))
            self._new_keys(fresh, f.typ)
            kids = list(map(get, keys))
        slots = self._assign(f, kids)  # before f changes: if it raised, these entries would be indexed again
        first_at, f.used = f.used, end
        klen = len(keys[-1])
        last_at = end - (klen + 28 - (klen + 4) % 8)
        mark = (last_at, bytes(buf[last_at:last_at + 4 + klen]))
        if not f.marks:
            f.marks = [(first_at, bytes(buf[first_at:first_at + 4 + len(keys[0])])), mark]
        else:
            f.marks = [f.marks[0], mark]
        f.keys.extend(kids)
        f.vidx.extend(vidx)
        f.slots.extend(slots)
        f.arrays()

    def _new_keys(self, keys: list[bytes], typ: str) -> None:
        families, parsed_of, ids = self._families, self._parsed, self._key_ids
        add = parsed_of.append
        for key, item in zip(keys, _decode_keys(keys)):
            ids[key] = len(parsed_of)
            if (type(item) is list and len(item) == 4 and type(item[0]) is str and type(item[1]) is str
                    and type(item[2]) is dict and _STR >= set(map(type, item[2].values())) and type(item[3]) is str):
                metric = item[0]
                add((metric, item[1], tuple(item[2].items())))
                if metric not in families:
                    families[metric] = (typ, item[3])
            else:
                add(None)

    # --- the plan: entry -> series slot ---------------------------------------------------------
    def _target(self, kid: int):
        """(metric, sample, labels, le) a key is served as, after the filter; None: not served."""
        parsed = self._parsed[kid]
        if parsed is None:
            return None
        metric, name, items = parsed
        histogram = self._families[metric][0] == "histogram"
        if self.series_filter is not None:
            labels = self.series_filter(name, dict(items))
            if labels is None:
                return None
            if not histogram or "le" not in labels:
                return metric, name, tuple(sorted(labels.items())), None
        elif not histogram:
            return metric, name, tuple(sorted(items)), None
        else:
            labels = dict(items)
            if "le" not in labels:
                return metric, name, tuple(sorted(items)), None
        labels = dict(labels)  # the filter's answer stays as it gave it
        try:
            le = float(labels.pop("le"))
        except (ValueError, TypeError):
            return None
        items = labels.items()
        return metric, name, tuple(sorted(items)), le  # asked once per key and file mode (_by_group caches the slot)

    def _assign(self, f: _File, kids) -> list[int]:
        pid = f.ident if f.kind == _LAST else None
        group = self._by_group.setdefault((f.kind, pid), {})
        slot_of, info, target_of, kind = self._slot_of, self._slot_info, self._target, f.kind
        get = group.get
        out = []
        add = out.append
        for kid in kids:
            slot = get(kid)
            if slot is None:
                target = target_of(kid)
                if target is None:
                    slot = _DROPPED
                else:
                    series = (*target, pid, kind)
                    slot = slot_of.get(series)
                    if slot is None:
                        slot = slot_of[series] = len(info)
                        info.append(series)
                group[kid] = slot
            add(slot)
        return out

    def _refilter(self) -> None:
        self._reset_slots()
        for f in self._files.values():
            f.slots = array.array("i", self._assign(f, f.keys))
            f.arrays()
        self._plan = None

    # --- a scrape --------------------------------------------------------------------------------
    def _scan(self) -> list[_File]:
        """The files to read now, mapped: new entries indexed, dead slots' live gauges left out."""
        alive: dict[str, bool] = {}
        self._mapped = sum(f.mm is not None for f in self._files.values())
        seen, active = set(), []
        try:
            names = sorted(e.name for e in os.scandir(self.path) if e.name.endswith(".db"))
        except FileNotFoundError:
            names = []
        for name in names:
            parsed = _parse_name(name)
            if parsed is None:
                continue
            typ, mode, ident = parsed
            if typ == "gauge" and mode.startswith("live"):
                if ident not in alive:
                    alive[ident] = _slot_alive(self.path, ident)
                if not alive[ident]:
                    continue
            f = self._open(name, typ, mode, ident)
            if f is not None:
                seen.add(name)
                active.append(f)
        for name in [n for n in self._files if n not in seen]:
            del self._files[name]  # gone, or a dead slot's live gauges: its mapping is let go
        self._mapped = sum(f.mm is not None for f in self._files.values())
        return active

    def collect(self) -> list[exposition.Block]:
        """The merged series now, one exposition.Block per family (sorted by name)."""
        with self._lock:
            if self.series_filter is not None:
                version = self.series_filter.version
                if version != self._version:
                    if self._version is not None:
                        self._refilter()
                    self._version = version
            collecting = gc.isenabled()
            gc.disable()  # the index is millions of small tuples: the cycle collector would walk them again and again
            try:
                active = self._scan()
                signature = tuple((f.serial, len(f.keys)) for f in active)
                if self._plan is None or self._plan[0] != signature:
                    self._plan = (signature, self._make_plan(active))
                    if len(self._slot_info) >= 2 * self._frozen_at + FREEZE_MIN:
                        gc.freeze()  # the index lives as long as the server: out of the collector's walks
                        self._frozen_at = len(self._slot_info)
            finally:
                if collecting:
                    gc.enable()
            try:
                return self._blocks(self._merge(active))
            finally:
                for f in active:
                    f.values = None  # this scrape's bytes (pread files) are not kept

    def _merge(self, files: list[_File]):
        """One value per slot, and which slots have none to serve (None: all have one).

        MultiProcessCollector's rules, file by file: the summed kinds added in file order, entry
        order (bincount adds in array order), the other modes file after file."""
        nslots, groups, unset, recent_slots = self._plan[1][0]
        acc = None
        for members, dest in groups:  # a few files at a time: memory for the gathered values stays ~ the series'
            gathered = np.empty(len(dest))
            at = 0
            if acc is not None:  # the running sums go first (dest starts with every slot): one sequential sum
                gathered[:nslots] = acc
                at = nslots
            for i in members:
                f = files[i]
                np.take(f.values, f.take, out=gathered[at:at + len(f.take)])
                at += len(f.take)
            acc = np.bincount(dest, weights=gathered, minlength=nslots)
        if acc is None:
            acc = np.zeros(nslots)
        acc[unset] = np.nan
        recent = {}
        for f in files:
            if f.kind == _SUM or not len(f.take):
                continue
            values = f.values[f.take]
            if f.kind == _LAST:
                acc[f.dest] = values
            elif f.kind == _MAX:
                np.fmax.at(acc, f.dest, values)
            elif f.kind == _MIN:
                np.fmin.at(acc, f.dest, values)
            else:  # _RECENT: the value with the latest timestamp (MultiProcessCollector's rule)
                for s, v, ts in zip(f.dest.tolist(), values.tolist(), f.values[f.take + 1].tolist()):
                    if recent.get(s, (0.0,))[0] < ts:
                        recent[s] = (ts, v)
        missing = None
        if recent_slots:
            missing = np.zeros(nslots, dtype=bool)
            for s in recent_slots:
                if s in recent:
                    acc[s] = recent[s][1]
                else:
                    missing[s] = True  # none at all while every timestamp is 0
        return acc, missing

    def _make_plan(self, files: list[_File]):
        """The merge (slots, groups of summed files with their values' slots) and, per family, what its block reads."""
        info = self._slot_info
        present = np.unique(np.concatenate([f.dest for f in files])) if files else _EMPTY
        groups, members, size = [], [], 0
        limit = max(len(info), GROUP_ENTRIES)
        every_slot = np.arange(len(info), dtype=np.intp)

        def close() -> None:  # a later group adds to the sums so far: bincount adds in array order
            dests = [files[j].dest for j in members]
            groups.append((members, np.concatenate([every_slot, *dests] if groups else dests)))
        for i, f in enumerate(files):
            if f.kind == _SUM and len(f.take):
                if members and size + len(f.take) > limit:
                    close()
                    members, size = [], 0
                members.append(i)
                size += len(f.take)
        if members:
            close()
        kinds = np.fromiter((info[s][5] for s in range(len(info))), dtype=np.int8, count=len(info))
        unset = np.flatnonzero(kinds != _SUM)
        recent = np.flatnonzero(kinds == _RECENT)
        recent = recent[np.isin(recent, present)].tolist()
        merge = (len(info), groups, unset, recent)
        return merge, self._recipes(present.tolist())

    # --- output --------------------------------------------------------------------------------
    def _prefix(self, slot: int, name: str | None = None) -> str:
        prefix = self._prefixes.get(slot)
        if prefix is None:
            metric, sample, labels, le, pid, _ = self._slot_info[slot]
            ordered = pid is None and le is None  # the labels of a target are sorted already
            if pid is not None:
                labels = (*labels, ("pid", pid))
            if le is not None:
                labels = (*labels, ("le", exposition.float_to_go(le)))
            prefix = self._prefixes[slot] = exposition.prefix(name or sample, labels, ordered)
        return prefix

    def _recipes(self, present: list[int]) -> list:
        """Per family: header, line prefixes, the slot each line reads, the histograms' cumulative buckets."""
        info, prefixes_of, le_text = self._slot_info, self._prefixes, {}
        by_family: dict[str, list[int]] = {}
        for s in present:
            by_family.setdefault(info[s][0], []).append(s)
        recipes = []
        for metric in sorted(by_family):
            typ, help_text = self._families[metric]
            hist = None
            if typ == "histogram":  # sorted by labels, then `le`, there
                lines, src, hist = self._histogram(metric, by_family[metric], le_text)
            else:
                slots = [row[-1] for row in sorted((i[1], i[2], i[4] or "", s) for s in by_family[metric]
                                                    for i in (info[s],))]
                lines = [prefixes_of.get(s) or self._prefix(s) for s in slots]
                src = slots
            recent = any(info[s][5] == _RECENT for s in src)
            recipes.append((exposition.header(metric, help_text, typ), lines, np.array(src, dtype=np.intp), hist,
                            recent))
        return recipes

    def _histogram(self, metric: str, slots: list[int], le_text: dict):
        """Lines of one histogram family: per label set its buckets by `le`, its other samples, its _count.

        The cumulative counts are made at each scrape from (bucket lines, first bucket of each label
        set, _count lines, extra slots of an `le` written twice, as "1" and "1.0")."""
        info, prefixes_of = self._slot_info, self._prefixes
        buckets: dict[tuple, dict[float, int]] = {}
        plain: dict[tuple, list[int]] = {}
        twice: dict[tuple, dict[float, list[int]]] = {}  # the other slots of an `le` (written as "1" and "1.0")
        for s in slots:
            i = info[s]
            le = i[3]
            if le is not None:
                group = buckets.get(i[2])
                if group is None:
                    group = buckets[i[2]] = {}
                if le in group:
                    twice.setdefault(i[2], {}).setdefault(le, []).append(s)
                else:
                    group[le] = s
            else:
                plain.setdefault(i[2], []).append(s)
        count_name = metric + "_count"
        bucket_name = exposition.metric_name(metric + "_bucket")
        lines, src, bucket_lines, starts, count_lines, extra_at, extra_slots = [], [], [], [], [], [], []
        for labels in sorted(set(buckets) | set(plain)):
            group = buckets.get(labels)
            if group:
                les = sorted(group)
                firsts = [group[le] for le in les]
                if any(s not in prefixes_of for s in firsts):  # the labels around `le`, rendered once per label set
                    pairs = exposition.label_pairs(labels)
                    at = bisect_right([k for k, _ in labels], "le")
                    head = f'{bucket_name}{{{",".join(pairs[:at])}{"," if at else ""}le="'
                    tail = f'"{"," if at < len(pairs) else ""}{",".join(pairs[at:])}}} '
                    for le, s in zip(les, firsts):
                        if s not in prefixes_of:
                            text = le_text.get(le)
                            if text is None:
                                text = le_text[le] = exposition.float_to_go(le)
                            prefixes_of[s] = head + text + tail
                starts.append(len(bucket_lines))
                others = twice.get(labels)
                if others:
                    for k, le in enumerate(les):
                        for e in others.get(le, ()):
                            extra_at.append(starts[-1] + k)
                            extra_slots.append(e)
                bucket_lines.extend(range(len(lines), len(lines) + len(les)))
                lines.extend(map(prefixes_of.__getitem__, firsts))
                src.extend(firsts)
            for s in plain.get(labels, ()):
                if not (group and info[s][1] == count_name):  # _count comes from the buckets
                    lines.append(prefixes_of.get(s) or self._prefix(s))
                    src.append(s)
            if group:
                count = self._counts.get((metric, labels))
                if count is None:
                    count = self._counts[(metric, labels)] = exposition.prefix(count_name, labels, True)
                count_lines.append(len(lines))
                lines.append(count)
                src.append(firsts[0])  # a placeholder: the +Inf total replaces it
        if not starts:
            return lines, src, None
        ends = np.array([*starts[1:], len(bucket_lines)], dtype=np.intp) - 1
        starts = np.array(starts, dtype=np.intp)
        return lines, src, (np.array(bucket_lines, dtype=np.intp), starts, ends, np.diff(np.append(starts, len(bucket_lines))),
                            np.array(count_lines, dtype=np.intp), np.array(extra_at, dtype=np.intp),
                            np.array(extra_slots, dtype=np.intp))

    def _blocks(self, merged) -> list[exposition.Block]:
        acc, missing = merged
        out = []
        for header, prefixes, src, hist, recent in self._plan[1][1]:
            values = acc[src]
            if hist is not None:
                bucket_lines, starts, ends, lengths, count_lines, extra_at, extra_slots = hist
                counts = values[bucket_lines]
                if len(extra_at):
                    np.add.at(counts, extra_at, acc[extra_slots])
                running = np.cumsum(counts)  # bucket counts are whole numbers: the difference below is exact
                before = np.zeros(len(starts))
                before[1:] = running[starts[1:] - 1]
                running -= np.repeat(before, lengths)
                values[bucket_lines] = running
                values[count_lines] = running[ends]
            values = values.tolist()
            if recent and missing is not None:  # a mostrecent gauge whose timestamps are all 0 is not served
                kept = np.flatnonzero(~missing[src]).tolist()
                if len(kept) < len(values):
                    prefixes, values = [prefixes[i] for i in kept], [values[i] for i in kept]
            out.append(exposition.Block(header, prefixes, values))
        return out

    def warm(self) -> threading.Thread:
        """Build the index now, in a thread: a server's first scrape then costs what the others do."""
        thread = threading.Thread(target=self.collect, name="slotreader-warm", daemon=True)
        thread.start()
        return thread

    def stats(self) -> dict:
        """Sizes of the index (files, entries, keys, series), for the benchmarks."""
        with self._lock:
            return {"files": len(self._files), "entries": sum(len(f.keys) for f in self._files.values()),
                    "keys": len(self._parsed), "slots": len(self._slot_info)}


__all__ = ["SlotReader"]
