"""A prometheus_client value class that writes each value at a fixed offset of its slot file.

prometheus_client's MultiProcessValue takes one process-wide lock, calls the process
identifier (a getpid() system call, then ours) and looks the key up in a dict on every inc
and observe. Here each value resolves its entry's offset once and writes its 16 bytes there
with one slice assignment: the file layout stays prometheus_client's (values.MmapedDict:
header [uint32 used, 4 pad], entries [uint32 keylen][key, padded][float64 value][float64
timestamp], append-only), so the stock MultiProcessCollector and slotreader.py read it.

- A fork is seen through os.register_at_fork, not a pid check per call: the child marks every
  value unbound, and its first write moves them all to the child's own slot at once, as
  MultiProcessValue does (its first write after a pid change resets every value).
- Each value has its own lock: threads of one process (gthread workers, ASGI thread pools)
  share a value, and ``+=`` is a read, an add and a store that a thread switch can split.
- The write is one item of a memoryview of the mapping cast to doubles (the value's 8 bytes
  are 8-aligned: prometheus_client pads every key to that), one aligned 8-byte store: no
  bytes object, no slice, and a scrape reads the old or the new value. Not struct.pack_into,
  which zeroes the bytes before it fills them in: a scrape must never read a counter as 0.
  The doubles are little-endian in the file: on a big-endian machine the value is packed and
  written as a slice instead.
- When the file grows (re-truncated, mapped again), values keep the mapping they have: it
  still covers their offset, which never moves.
"""
from __future__ import annotations

import mmap
import os
import struct
import sys
import threading
from bisect import bisect_left

from prometheus_client import values as _values
from prometheus_client.mmap_dict import mmap_key

INITIAL_SIZE = 1 << 16  # as prometheus_client's mmap_dict._INITIAL_MMAP_SIZE
_INT = struct.Struct("<i")
_TWO_DOUBLES = struct.Struct("<dd")
_NATIVE = sys.byteorder == "little"  # a memoryview's "d" is the machine's double; the file's is little-endian


def _entries(mm, used: int):
    """Yield (key, value, offset of the value) for each complete entry below `used`."""
    pos = 8
    while pos < used:
        length = _INT.unpack_from(mm, pos)[0]
        if length < 0 or pos + 4 + length > used:
            raise RuntimeError("slot file entry beyond its used size: the file is corrupted")
        key = bytes(mm[pos + 4:pos + 4 + length]).decode("utf-8")
        pos += 4 + length + (8 - (length + 4) % 8)
        yield key, _TWO_DOUBLES.unpack_from(mm, pos)[0], pos
        pos += 16


class SlotFile:
    """One process's writable view of one slot file: the offset of every key in it.

    Not thread-safe: the value class calls it under its lock.
    """

    def __init__(self, path: str):
        self._f = open(path, "a+b")  # noqa: SIM115 (open for as long as the values write through it)
        capacity = os.fstat(self._f.fileno()).st_size
        if capacity == 0:
            self._f.truncate(INITIAL_SIZE)
            capacity = INITIAL_SIZE
        elif capacity % 8:  # truncated or foreign: the doubles' view needs a multiple of 8 bytes (zeros added)
            capacity += 8 - capacity % 8
            self._f.truncate(capacity)
        self.capacity = capacity
        self.mm = mmap.mmap(self._f.fileno(), capacity)
        self.doubles = _doubles(self.mm)
        self.used = _INT.unpack_from(self.mm, 0)[0]
        if self.used == 0:
            self.used = 8
            self.mm[0:4] = _INT.pack(8)
        self.offsets = {key: pos for key, _, pos in _entries(self.mm, self.used)}

    def offset(self, key: str) -> int:
        """The offset of the key's value, appending a zero entry for a new key."""
        pos = self.offsets.get(key)
        if pos is not None:
            return pos
        encoded = key.encode("utf-8")
        padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
        entry = struct.pack(f"<i{len(padded)}sdd", len(encoded), padded, 0.0, 0.0)
        while self.used + len(entry) > self.capacity:
            self.capacity *= 2
            self._f.truncate(self.capacity)
            self.mm = mmap.mmap(self._f.fileno(), self.capacity)  # the old mapping stays valid for its values
            self.doubles = _doubles(self.mm)
        self.mm[self.used:self.used + len(entry)] = entry
        self.used += len(entry)
        self.mm[0:4] = _INT.pack(self.used)  # the entry is complete before `used` covers it
        pos = self.offsets[key] = self.used - 16
        return pos

    def close(self) -> None:
        self._f.close()  # the mappings close when the last value lets go of them


class _Packed:
    """Where memoryview's doubles are not the file's: item i written as 8 little-endian bytes."""

    __slots__ = ("mm",)

    def __init__(self, mm):
        self.mm = mm

    def __setitem__(self, i: int, value: float) -> None:
        self.mm[i * 8:i * 8 + 8] = _DOUBLE.pack(value)

    def __getitem__(self, i: int) -> float:
        return _DOUBLE.unpack_from(self.mm, i * 8)[0]


_DOUBLE = struct.Struct("<d")


def _doubles(mm):
    """The mapping as a sequence of doubles (item i: bytes 8i..8i+8), once per mapping (not per write)."""
    if _NATIVE and len(mm) % 8 == 0:
        return memoryview(mm).cast("d")
    return _Packed(mm)  # cast("d") raises on a size that is not a multiple of 8


def SlotValue(process_identifier):  # noqa: N802 (a class factory, as values.MultiProcessValue)
    """Return a value class writing to `<type>_<process_identifier()>.db` files in PROMETHEUS_MULTIPROC_DIR.

    `process_identifier` is called now and when values (re)bind: at the first write after a
    fork and after moved(), never per write. It must give distinct ids to processes that run
    at the same time. A fork made outside Python's os.fork() (no at-fork hooks) is not seen.
    """
    files: dict[str, SlotFile] = {}
    every: list = []
    # The slot is claimed now, as MultiProcessValue does (it calls the identifier when made).
    shared = {"lock": threading.Lock(), "ident": process_identifier(), "stale": True}

    def bind_all() -> None:
        """Point every value at its entry in the slot files of the current identifier (lock held).

        Every value gets its entry (a zero for one never written here), as MultiProcessValue's
        reset does. A value another thread is writing right now is left unbound instead: that
        write lands whole in the old slot, and the value attaches itself at its next write.
        """
        ident = process_identifier()
        if ident != shared["ident"] or shared["stale"]:
            for f in files.values():
                f.close()
            files.clear()
            shared["ident"], shared["stale"] = ident, False
            for value in every:
                if value._lock.acquire(False):
                    try:
                        value._attach()
                    finally:
                        value._lock.release()
                else:
                    value._mm = None

    def unbind(reinit_locks: bool) -> None:
        shared["stale"] = True
        for value in every:
            value._mm = None
            if reinit_locks:  # a lock held by a thread at fork() stays held in the child forever
                value._lock = threading.Lock()

    def forked() -> None:
        shared["lock"] = threading.Lock()
        unbind(True)

    class Value:
        """A float in a slot file: written at a fixed offset, under a lock of its own."""

        _multiprocess = True
        __slots__ = ("_prefix", "_key", "_lock", "_mm", "_at", "_value")  # _mm: the doubles of the mapping; _at: the item

        def __init__(self, typ, metric_name, name, labelnames, labelvalues, help_text, multiprocess_mode="",
                     **kwargs):
            self._prefix = f"{typ}_{multiprocess_mode}" if typ == "gauge" else typ
            self._key = mmap_key(metric_name, name, labelnames, labelvalues, help_text)
            self._lock = threading.Lock()
            self._mm = None
            self._value = 0.0
            with shared["lock"]:
                every.append(self)
                if shared["stale"] or process_identifier() != shared["ident"]:
                    bind_all()
                if self._mm is None:
                    self._attach()

        def _attach(self) -> None:
            f = files.get(self._prefix)
            if f is None:
                path = os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], f"{self._prefix}_{shared['ident']}.db")
                f = files[self._prefix] = SlotFile(path)
            pos = f.offset(self._key)
            self._value = _TWO_DOUBLES.unpack_from(f.mm, pos)[0]
            if pos % 8:
                raise RuntimeError("slot file value not 8-aligned: the file is corrupted")
            self._at = pos // 8  # keys are padded so that every value is 8-aligned
            self._mm = f.doubles  # last: a thread that sees the mapping sees the value and offset too

        def _bind(self):
            """Attach this value (its own lock held by the caller) and return its mapping."""
            with shared["lock"]:
                if shared["stale"]:
                    bind_all()
                if self._mm is None:
                    self._attach()
            return self._mm

        # acquire()/release() in try/finally: a third cheaper than `with` on CPython 3.11.
        def inc(self, amount):
            lock = self._lock
            lock.acquire()
            try:
                mm = self._mm
                if mm is None:
                    mm = self._bind()
                mm[self._at] = self._value = self._value + amount
            finally:
                lock.release()

        def set(self, value, timestamp=None):
            lock = self._lock
            lock.acquire()
            try:
                mm = self._mm
                if mm is None:
                    mm = self._bind()
                self._value = value
                at = self._at
                mm[at + 1] = timestamp or 0.0
                mm[at] = value
            finally:
                lock.release()

        def set_exemplar(self, exemplar):
            return  # as MultiProcessValue: no exemplars in multiprocess mode

        def get(self):
            with self._lock:
                if self._mm is None:
                    self._bind()
                return self._value

        def get_exemplar(self):
            return None

        @classmethod
        def moved(cls, release=None) -> None:
            """The process identifier changes (a new slot): every value moves at its next write.

            `release` (the old slot's release) runs under the class's lock, so that no value
            binds to the old slot after it was released.
            """
            with shared["lock"]:
                if release is not None:
                    release()
                unbind(False)

        @classmethod
        def close_all_files(cls) -> None:
            with shared["lock"]:
                unbind(False)
                for f in files.values():
                    f.close()
                files.clear()

    os.register_at_fork(after_in_child=forked)
    cleanups = getattr(_values, "_multi_process_cleanups", None)  # 0.26's close_all_multiprocess_files(); not in 0.21
    if isinstance(cleanups, list):
        cleanups.append(Value.close_all_files)
    return Value


def inc_of(child):
    """``f(amount)`` adding to a counter or gauge child: its value's own inc, past the public checks."""
    value = getattr(child, "_value", None)
    return value.inc if callable(getattr(value, "inc", None)) else child.inc


def observe_of(child):
    """``f(amount)`` observing into a histogram child: one bisect and the bucket's inc, no loop.

    The same writes as Histogram.observe (sum, then the first bucket whose bound >= amount),
    except that a sum of 0 is not written again. Falls back to observe() on another client.
    """
    try:
        add_sum, bounds = child._sum.inc, list(child._upper_bounds)
        buckets = [b.inc for b in child._buckets]
    except AttributeError:
        return child.observe
    if len(bounds) != len(buckets) or bounds[-1] != float("inf"):
        return child.observe

    def observe(amount):
        if amount:
            add_sum(amount)
        buckets[bisect_left(bounds, amount)](1)

    return observe


__all__ = ["INITIAL_SIZE", "SlotFile", "SlotValue", "inc_of", "observe_of"]
