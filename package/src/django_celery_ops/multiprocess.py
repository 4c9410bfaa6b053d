"""prometheus_client multiprocess storage whose file count is bounded by the live processes.

Stock multiprocess mode names its files by pid: every recycled gunicorn worker or Celery
child leaves files behind, and every scrape reads them all (prometheus/client_python #204,
#568). Here a process writes to the files of a *slot*: the lowest slot number whose lock file
no live process holds. The lock is an flock, which the kernel drops when its holder dies
(SIGKILL included), so a new process takes over a dead one's slot and its counters continue
from the values in the files: exact, never backwards. Live gauges (livesum, livemax, ...) of a
dead owner leave the next scrape: the collector skips the live-gauge files of every slot whose
lock no process holds, and the next owner of the slot removes them, as mark_process_dead would.

install() must run before the first metric is created; app/__init__.py calls it.
"""
from __future__ import annotations

import fcntl
import glob
import itertools
import os
import threading
import time

from prometheus_client import CollectorRegistry, values
from prometheus_client import multiprocess as _mp

from .slotvalue import SlotValue

_lock = threading.RLock()  # install() holds it while SlotValue calls _identifier()
_state: dict = {"pid": None, "fd": None, "ident": None, "role": None, "installed": False}


def directory() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _lock_slot(fd: int, tries: int = 3) -> bool:
    """Take the slot's lock; a scrape's liveness probe holds it for microseconds, so try again briefly."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(0.002)
    return False


def _claim(path: str, role: str) -> tuple[int, str]:
    for n in itertools.count():
        ident = f"{role}-{n}"
        fd = os.open(os.path.join(path, f"{ident}.lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if not _lock_slot(fd):
            os.close(fd)
            continue
        _mp.mark_process_dead(ident, path)  # the previous owner is dead: drop its live gauges
        return fd, ident
    raise AssertionError("unreachable")


def _identifier() -> str:
    """The calling process's slot id, claimed on first use in each process (after every fork)."""
    pid = os.getpid()
    if _state["pid"] == pid:
        return _state["ident"]
    with _lock:
        if _state["pid"] != pid:
            inherited = _state["fd"]
            if inherited is not None:
                os.close(inherited)  # the parent's slot: our copy of its fd must not keep it locked
            role = _state["role"] or os.environ.get("OBS_METRICS_ROLE", "proc")
            _state["fd"], _state["ident"] = _claim(directory(), role)
            _state["pid"] = pid
    return _state["ident"]


def problem(path: str) -> str | None:
    """Why PROMETHEUS_MULTIPROC_DIR cannot hold the metric files (made when missing), or None."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        return f"PROMETHEUS_MULTIPROC_DIR={path!r} is not a directory ({exc.strerror})"
    if not os.access(path, os.W_OK | os.X_OK):
        return f"PROMETHEUS_MULTIPROC_DIR={path!r} is not writable by this user"
    return None


def install(strict: bool = False) -> bool:
    """Make every metric created from now on write slot-named files; False when not in multiprocess mode.

    An unusable directory leaves the storage in memory (importing the library never fails: the
    system checks E003/E004 name it) unless `strict`, as setup() is: a server process fails.
    """
    path = directory()
    if not path:
        return False
    if not _state["installed"]:
        why = problem(path)
        if why:
            if strict:
                raise RuntimeError(why)
            # prometheus_client chose its own pid-file storage from the variable: it would fail at the
            # first metric, before the system checks could name the directory.
            values.ValueClass = values.MutexValue
            return False
    with _lock:
        if not _state["installed"]:
            values.ValueClass = SlotValue(process_identifier=_identifier)
            _state["installed"] = True
    return True


def setup(role: str = "") -> str:
    """Install, and claim a slot for this process now under the given role name; return the slot id.

    Taking a new slot is safe at any time: the old slot's files keep what was counted there,
    the collector sums over all files, and the next process to take the old slot continues it.
    """
    if not install(strict=True):
        return ""
    def release() -> None:
        with _lock:
            if role and role != _state["role"]:
                _state["role"] = role
                if _state["pid"] == os.getpid():
                    os.close(_state["fd"])  # release the old slot; _identifier claims one under the role
                    _state["fd"], _state["pid"] = None, None

    moved = getattr(values.ValueClass, "moved", None)
    if moved is not None and role and role != _state["role"]:
        # Under the value class's lock: no value can bind to the old slot between its release and
        # the values' move. Not under _lock: the value class takes _lock (in _identifier) under its own.
        moved(release)
    else:
        release()
    return _identifier()


def _slot_alive(path: str, ident: str) -> bool:
    """True while a process holds the slot's lock (or when there is no lock file to tell)."""
    try:  # read-only is enough for flock: the exporter may see the folder through a read-only mount
        fd = os.open(os.path.join(path, f"{ident}.lock"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True  # held: the owner lives (a claimant that finds us here takes the next slot)
    finally:
        os.close(fd)  # closing drops our probe lock
    return False


class SlotCollector(_mp.MultiProcessCollector):
    """MultiProcessCollector that leaves out the live gauges of slots whose process has died."""

    def collect(self):
        files, alive = [], {}
        for path in glob.glob(os.path.join(self._path, "*.db")):
            typ, _, rest = os.path.basename(path)[:-3].partition("_")
            if typ == "gauge" and rest.startswith("live"):
                ident = rest.partition("_")[2]  # gauge_<mode>_<ident>.db; modes hold no "_"
                if ident not in alive:
                    alive[ident] = _slot_alive(self._path, ident)
                if not alive[ident]:
                    continue
            files.append(path)
        return self.merge(files, accumulate=True)


def collector_registry(path: str | None = None) -> CollectorRegistry:
    """A registry that merges every slot's files (live gauges of live slots only), for a metrics endpoint."""
    registry = CollectorRegistry()
    SlotCollector(registry, path=path or directory())
    return registry


__all__ = ["SlotCollector", "collector_registry", "directory", "install", "problem", "setup"]
