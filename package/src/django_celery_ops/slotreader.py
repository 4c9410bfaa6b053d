"""Incremental aggregation of the slot files, for the long-lived metrics processes.

prometheus_client's MultiProcessCollector reads and JSON-decodes every key of every file at
every scrape, so a scrape costs (keys x processes) decodes even when nothing new was counted.
A SlotReader lives as long as its server and keeps, per file, an index of the entries it has
seen (key id, offset of the value); a scrape rereads only the float64 values, in chunks, and
parses only the entries appended since (the layout is append-only: values never move). The
values of every file are folded into the output series by a plan (entry -> series slot) made
when the entry was first seen, and the text lines' prefixes are rendered once, when the set of
series changes. Semantics are MultiProcessCollector's, file for file:

- counters, summaries, histogram buckets and _sum are summed over the files; histogram buckets
  are then made cumulative over `le` and _count is the +Inf total;
- gauges follow their file's multiprocess mode: all/liveall keep one series per slot (label
  `pid` = the slot id), sum/livesum add, max/min keep the extreme, mostrecent the value with
  the latest timestamp (none at all while every timestamp is 0);
- the live gauges of a slot whose lock no process holds are left out (multiprocess.SlotCollector);
- a file replaced (another inode), shorter than before, or whose first or last indexed entry
  changed (truncated and rewritten in place) is indexed again from its start.

One departure: a gauge whose files disagree on the mode (code changed between deploys) is
merged per file mode; MultiProcessCollector applies the mode of whichever file it read last.

An optional `series_filter` (cardinality.SeriesPolicy) is asked once per key what to serve
(`series_filter(sample_name, labels) -> labels | None`); every key is asked again when its
`.version` changes. Keys that end up with the same labels are merged as files are.

    reader = SlotReader("/var/run/prometheus/web")
    exposition.write(sys.stdout.buffer, [reader])
"""
from __future__ import annotations

import array
import itertools
import json
import os
import struct
import sys
import threading
from bisect import bisect_right
from operator import add, itemgetter

from . import exposition
from .multiprocess import _slot_alive  # the same liveness rule as the reference collector

CHUNK_BYTES = 1 << 20  # values are read through one buffer of this size: memory bounded by it, not the files
TYPES = ("counter", "gauge", "histogram", "summary")
_SUM, _MAX, _MIN, _LAST, _RECENT = range(5)
_KINDS = {"sum": _SUM, "livesum": _SUM, "max": _MAX, "livemax": _MAX, "min": _MIN, "livemin": _MIN,
          "all": _LAST, "liveall": _LAST, "mostrecent": _RECENT, "livemostrecent": _RECENT}
_INT = struct.Struct("<i")
_DROPPED = -1
_BATCH = 2  # columns held before they are added: memory of 2 files' values, sum() in C over them
_MIN_GROUP = 16  # series read from the same files, below which a file's entries are folded one by one


def _tuple_getter(indexes):
    """itemgetter that returns a tuple whatever the number of indexes."""
    if len(indexes) == 1:
        i = indexes[0]
        return lambda seq: (seq[i],)
    return itemgetter(*indexes)


if sys.version_info < (3, 12):
    def _add_columns(sums: list, columns: list) -> list:
        """sums[i] + columns[0][i] + columns[1][i] + ..., added left to right (sum() adds floats plainly)."""
        return list(map(sum, zip(sums, *columns)))
else:  # sum() compensates float rounding from 3.12 on: add plainly, as MultiProcessCollector does
    def _add_columns(sums: list, columns: list) -> list:
        for column in columns:
            sums = list(map(add, sums, column))
        return sums


def _column_getter(positions: list[int]):
    """Pick values[p] for p in positions: a slice when they are consecutive (files written in one order)."""
    first = positions[0]
    if positions == list(range(first, first + len(positions))):
        if first == 0:
            return lambda values, n=len(positions): values if len(values) == n else values[:n]
        return itemgetter(slice(first, first + len(positions)))
    return _tuple_getter(positions)


class _File:
    """What the reader knows of one .db file: its entries (key id, value index) up to `used`."""

    __slots__ = ("name", "typ", "kind", "ident", "live", "ino", "used", "keys", "vidx", "slots", "chunks", "order", "marks",
                 "serial")

    _serials = itertools.count()

    def __init__(self, name: str, typ: str, mode: str, ident: str, ino: int):
        self.name, self.typ, self.ident, self.ino = name, typ, ident, ino
        self.serial = next(self._serials)  # the plan is remade when a file is indexed anew
        self.kind = _KINDS.get(mode, _SUM) if typ == "gauge" else _SUM
        self.live = typ == "gauge" and mode.startswith("live")
        self.used = 8
        self.keys = array.array("i")  # key id per entry, in file order
        self.vidx = array.array("i")  # offset of the entry's value / 8
        self.slots = array.array("i")  # output slot per entry (_DROPPED: filtered out)
        self.chunks: list = []  # (offset, length, Struct) per read: the values of the entries not dropped
        self.order = array.array("i")  # the slot of each value the chunks yield, in file order
        self.marks: list[tuple[int, bytes]] = []  # (offset, length+key) of the first and last entry indexed


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


def _unchanged(fd: int, f: _File) -> bool:
    """True while the first and last entries indexed are still in place (not truncated and rewritten)."""
    return all(os.pread(fd, len(raw), offset) == raw for offset, raw in f.marks)


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
        self._buf = bytearray(CHUNK_BYTES + 16)
        self._view = memoryview(self._buf)
        self._plan = None  # (signature, blocks recipe)

    def _reset_slots(self) -> None:
        self._slot_of: dict[tuple, int] = {}  # series key -> slot
        self._slot_info: list[tuple] = []  # slot -> (metric, sample, labels, le, pid, kind)
        self._by_group: dict[tuple, dict[int, int]] = {}  # (kind, pid) -> {key id: slot}
        self._prefixes: dict[int, str] = {}  # slot -> its line's prefix
        self._counts: dict[tuple, str] = {}  # (histogram, labels) -> its _count line's prefix

    # --- reading ---------------------------------------------------------------------------
    def _read(self, fd: int, offset: int, length: int):
        """Fill the buffer's first `length` bytes from the file at `offset`; False when the file is shorter."""
        if length > len(self._buf):
            self._view.release()
            self._buf = bytearray(length + 16)
            self._view = memoryview(self._buf)
        got = 0
        while got < length:
            n = os.preadv(fd, [self._view[got:length]], offset + got)
            if n <= 0:
                return False
            got += n
        return True

    def _index(self, fd: int, f: _File, used: int) -> bool:
        """Index the entries between f.used and `used`; True when there were any."""
        pos, before, unpack, get = f.used, len(f.keys), _INT.unpack_from, self._key_ids.get
        new_keys, new_vidx, last, need = [], [], None, 0
        add_key, add_vidx = new_keys.append, new_vidx.append
        while pos + 4 <= used:
            length = max(min(used - pos, CHUNK_BYTES), need)
            data = os.pread(fd, length, pos)
            if len(data) < length:
                break
            p, need = 0, 0
            while p + 4 <= length:
                klen = unpack(data, p)[0]
                size = klen + 28 - (klen + 4) % 8  # length, key padded to 8, value, timestamp
                if klen < 0 or pos + p + size > used:
                    used = pos + p  # torn or corrupt: keep what is complete, look again next scrape
                    break
                if p + size > length:
                    need = size  # the entry continues past this read
                    break
                key = data[p + 4:p + 4 + klen]
                kid = get(key)
                if kid is None:
                    kid = self._new_key(key, f.typ)
                add_key(kid)
                add_vidx((pos + p + size - 16) >> 3)
                lastp, p = p, p + size
            if p == 0 and not need:
                break
            if p:
                last = (pos + lastp, data[lastp:lastp + 4 + unpack(data, lastp)[0]])
            pos += p
        f.used = pos
        if not new_keys:
            return False
        f.marks = [*f.marks[:1], last] if f.marks else [last]
        f.keys.extend(new_keys)
        f.vidx.extend(new_vidx)
        f.slots.extend(self._assign(f, new_keys))
        f.chunks = self._chunks(f)
        return len(f.keys) > before

    def _new_key(self, key: bytes, typ: str) -> int:
        kid = len(self._parsed)
        try:
            metric, name, labels, help_text = json.loads(key)
            parsed = (metric, name, tuple(labels.items())) if isinstance(labels, dict) else None
        except (ValueError, TypeError):
            parsed = None
        if parsed is not None:
            self._families.setdefault(metric, (typ, help_text))
        self._parsed.append(parsed)
        self._key_ids[key] = kid
        return kid

    # --- the plan: entry -> series slot ---------------------------------------------------------
    def _target(self, kid: int):
        """(metric, sample, labels, le) a key is served as, after the filter; None: not served."""
        parsed, target = self._parsed[kid], None
        if parsed is not None:
            metric, name, items = parsed
            labels = dict(items)
            if self.series_filter is not None:
                labels = self.series_filter(name, labels)
            if labels is not None:
                le = None
                if "le" in labels and self._families[metric][0] == "histogram":
                    labels = dict(labels)
                    try:
                        le = float(labels.pop("le"))
                    except ValueError:
                        labels = None
                if labels is not None:
                    target = (metric, name, tuple(sorted(labels.items())), le)
        return target  # asked once per key and file mode (_by_group caches the slot)

    def _assign(self, f: _File, kids) -> list[int]:
        pid = f.ident if f.kind == _LAST else None
        group = self._by_group.setdefault((f.kind, pid), {})
        out = []
        for kid in kids:
            slot = group.get(kid)
            if slot is None:
                target = self._target(kid)
                if target is None:
                    slot = _DROPPED
                else:
                    series = (*target, pid, f.kind)
                    slot = self._slot_of.get(series)
                    if slot is None:
                        slot = self._slot_of[series] = len(self._slot_info)
                        self._slot_info.append(series)
                group[kid] = slot
            out.append(slot)
        return out

    def _chunks(self, f: _File) -> list:
        """Structs that unpack the values of the file's entries (value and timestamp for mostrecent) in order."""
        pairs = [(v, s) for v, s in zip(f.vidx, f.slots) if s != _DROPPED]
        vidx = [v for v, _ in pairs]
        f.order = array.array("i", [s for _, s in pairs])
        width = 2 if f.kind == _RECENT else 1
        field = "d" * width
        out, i, span = [], 0, CHUNK_BYTES // 8 - 2
        while i < len(vidx):
            base = vidx[i]
            j = bisect_right(vidx, base + span, i)
            parts, at = ["<"], base
            for v in vidx[i:j]:
                if v > at:
                    parts.append(f"{(v - at) * 8}x")
                parts.append(field)
                at = v + width
            out.append((base * 8, (at - base) * 8, struct.Struct("".join(parts))))
            i = j
        return out

    def _refilter(self) -> None:
        self._reset_slots()
        for f in self._files.values():
            f.slots = array.array("i", self._assign(f, f.keys))
            f.chunks = self._chunks(f)
        self._plan = None

    # --- a scrape --------------------------------------------------------------------------------
    def _scan(self) -> list[tuple[_File, int]]:
        """The files to read now, opened: new entries indexed, dead slots' live gauges left out."""
        alive: dict[str, bool] = {}
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
            try:
                fd = os.open(os.path.join(self.path, name), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # removed since the listing (mark_process_dead of a live gauge file)
            try:
                ino = os.fstat(fd).st_ino
                header = os.pread(fd, 8, 0)
                used = _INT.unpack_from(header)[0] if len(header) == 8 else 0
                f = self._files.get(name)
                if f is None or f.ino != ino or used < f.used or not _unchanged(fd, f):
                    f = self._files[name] = _File(name, typ, mode, ident, ino)  # new, replaced or truncated
                if used > f.used:
                    self._index(fd, f, used)
            except BaseException:
                for _, opened in [*active, (None, fd)]:
                    os.close(opened)
                raise
            seen.add(name)
            active.append((f, fd))
        for name in [n for n in self._files if n not in seen and not os.path.exists(os.path.join(self.path, n))]:
            del self._files[name]
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
            active = self._scan()
            try:
                signature = tuple((f.serial, len(f.keys)) for f, _ in active)
                if self._plan is None or self._plan[0] != signature:
                    self._plan = (signature, self._make_plan([f for f, _ in active]))
                init, _, folds, groups = self._plan[1]
                acc, stamps = init.copy(), {}
                sums = [[0.0] * len(slots) for slots in groups]
                pending: list[list] = [[] for _ in groups]
                for (f, fd), fold in zip(active, folds):
                    self._fold(f, fd, fold, acc, sums, pending, stamps)
                for g, columns in enumerate(pending):
                    if columns:
                        sums[g] = _add_columns(sums[g], columns)
            finally:
                for _, fd in active:
                    os.close(fd)
            for slots, values in zip(groups, sums):
                for s, v in zip(slots, values):
                    acc[s] = v
            return self._blocks(acc)

    def _values(self, f: _File, fd: int) -> list[float] | None:
        values: list[float] = []
        for offset, length, unpack in f.chunks:
            if not self._read(fd, offset, length):
                return None  # shorter than indexed: the next scrape sees the new inode or size
            values.extend(unpack.unpack_from(self._buf))
        return values

    def _fold(self, f: _File, fd: int, fold, acc: list, sums: list, pending: list, stamps: dict) -> None:
        """Add one file's values: whole columns into the groups' sums, the rest one by one."""
        values = self._values(f, fd)
        if values is None:
            return
        columns, getter, slots = fold
        for g, column in columns:
            waiting = pending[g]
            waiting.append(column(values))
            if len(waiting) >= _BATCH:
                sums[g] = _add_columns(sums[g], waiting)
                waiting.clear()
        if not slots:
            return
        kind, values = f.kind, getter(values)
        if kind == _SUM:
            for s, v in zip(slots, values):
                acc[s] += v
        elif kind == _LAST:
            for s, v in zip(slots, values):
                acc[s] = v
        elif kind == _MAX:
            for s, v in zip(slots, values):
                c = acc[s]
                if c is None or v > c:
                    acc[s] = v
        elif kind == _MIN:
            for s, v in zip(slots, values):
                c = acc[s]
                if c is None or v < c:
                    acc[s] = v
        else:  # _RECENT: the value with the latest timestamp (MultiProcessCollector's rule)
            for s, v, ts in zip(slots, values[::2], values[1::2]):
                ts = float(ts or 0)
                if stamps.get(s, 0.0) < ts:
                    acc[s], stamps[s] = v, ts

    def _columns(self, files: list[_File]):
        """Split the summed series into groups read from the same files, so a file adds whole columns.

        A group's series are in one order; each of its files gets an itemgetter that picks their values
        in that order, and map(add) folds the column into the group's sums: the sums are made in file
        order, exactly as entry by entry, without a Python step per entry. Series of small groups, of
        files of other modes, or seen twice in one file, are folded entry by entry.
        """
        where: dict[int, list[int]] = {}
        for i, f in enumerate(files):
            if f.kind == _SUM:
                for s in f.order:
                    where.setdefault(s, []).append(i)
        by_files: dict[tuple, list[int]] = {}
        for s, fis in where.items():
            if len(set(fis)) == len(fis):
                by_files.setdefault(tuple(fis), []).append(s)
        groups = [slots for slots in by_files.values() if len(slots) >= _MIN_GROUP]
        grouped = {s: (g, k) for g, slots in enumerate(groups) for k, s in enumerate(slots)}
        folds = []
        for i, f in enumerate(files):
            picks: dict[int, list[int]] = {}
            rest = []
            for pos, s in enumerate(f.order):
                gk = grouped.get(s) if f.kind == _SUM else None
                if gk is None:
                    rest.append(pos)
                else:
                    column = picks.get(gk[0])
                    if column is None:
                        column = picks[gk[0]] = [0] * len(groups[gk[0]])
                    column[gk[1]] = pos
            columns = [(g, _column_getter(positions)) for g, positions in picks.items()]
            if f.kind == _RECENT:
                getter = _tuple_getter([x for p in rest for x in (2 * p, 2 * p + 1)]) if rest else None
            else:
                getter = _tuple_getter(rest) if rest else None
            folds.append((columns, getter, tuple(f.order[p] for p in rest)))
        return folds, groups

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

    def _make_plan(self, files: list[_File]):
        """Per family: header, line prefixes, the slot each line reads, cumulative bucket groups."""
        present = set()
        for f in files:
            present.update(f.slots)
        present.discard(_DROPPED)
        info = self._slot_info
        init = [0.0 if info[s][5] == _SUM else None for s in range(len(info))]
        by_family: dict[str, list[int]] = {}
        for s in present:
            by_family.setdefault(info[s][0], []).append(s)
        recipes = []
        for metric in sorted(by_family):
            typ, help_text = self._families[metric]
            slots = sorted(by_family[metric], key=lambda s: (info[s][1], info[s][2], info[s][4] or "", info[s][3] or 0))
            prefixes, src, cumulative = [], [], []
            if typ == "histogram":
                buckets: dict[tuple, dict[float, list[int]]] = {}
                plain: dict[tuple, list[int]] = {}
                for s in slots:
                    if info[s][3] is not None:
                        buckets.setdefault(info[s][2], {}).setdefault(info[s][3], []).append(s)
                    else:
                        plain.setdefault(info[s][2], []).append(s)
                count_name = metric + "_count"
                bucket_name = exposition.metric_name(metric + "_bucket")
                for labels in sorted(set(buckets) | set(plain)):
                    group = buckets.get(labels)
                    positions, around = [], None
                    for le in sorted(group or ()):
                        first, *extra = group[le]
                        positions.append((len(src), extra))
                        prefix = self._prefixes.get(first)
                        if prefix is None:
                            if around is None:  # the labels before and after `le`, rendered once per group
                                pairs = exposition.label_pairs(labels)
                                at = bisect_right([k for k, _ in labels], "le")
                                around = (",".join(pairs[:at]) + ("," if at else ""),
                                          ("," if at < len(pairs) else "") + ",".join(pairs[at:]))
                            prefix = f'{bucket_name}{{{around[0]}le="{exposition.float_to_go(le)}"{around[1]}}} '
                            self._prefixes[first] = prefix
                        prefixes.append(prefix)
                        src.append(first)
                    for s in plain.get(labels, ()):
                        if not (group and info[s][1] == count_name):  # _count comes from the buckets
                            prefixes.append(self._prefix(s))
                            src.append(s)
                    if group:
                        cumulative.append((positions, len(src)))
                        count = self._counts.get((metric, labels))
                        if count is None:
                            count = self._counts[(metric, labels)] = exposition.prefix(count_name, labels, True)
                        prefixes.append(count)
                        src.append(src[positions[0][0]])  # a placeholder: the +Inf total replaces it
            else:
                for s in slots:
                    prefixes.append(self._prefix(s))
                    src.append(s)
            maybe_missing = any(info[s][5] != _SUM for s in src)
            recipes.append((exposition.header(metric, help_text, typ), prefixes, _tuple_getter(src) if src else None,
                            cumulative, maybe_missing))
        folds, groups = self._columns(files)
        return init, recipes, folds, groups

    def _blocks(self, acc: list) -> list[exposition.Block]:
        out = []
        for header, prefixes, getter, cumulative, maybe_missing in self._plan[1][1]:
            values = list(getter(acc)) if getter else []
            for positions, count in cumulative:
                total = 0.0
                for p, extra in positions:
                    for e in extra:
                        values[p] += acc[e]
                    total += values[p]
                    values[p] = total
                values[count] = total
            if maybe_missing:  # a mostrecent gauge whose timestamps are all 0 is not served
                kept = [i for i, v in enumerate(values) if v is not None]
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


__all__ = ["CHUNK_BYTES", "SlotReader"]
