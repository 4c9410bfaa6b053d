"""The shape of a gunicorn tier (workers, capacity, listeners), from its master to the metrics server.

The master writes a small JSON file next to the metric files and holds an flock on a lock
file for its whole life; the metrics server (another process) exports the gauges from that
file and reads the listen backlog from the kernel at scrape time, so the numbers are live
even when every worker is busy. A free lock means no master runs: the tier has no workers.
"""
from __future__ import annotations

import fcntl
import json
import os
import time

from prometheus_client.core import GaugeMetricFamily

from . import listen

STATE_FILE = "gunicorn-tier.json"
LOCK_FILE = "gunicorn-tier.lock"


def hold_lock(directory: str, attempts: int = 20) -> int | None:
    """In the master: take the tier lock (kept until exit); None when another master holds it."""
    fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    for _ in range(attempts):  # a scrape may hold it shared for a moment
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            time.sleep(0.05)
    os.close(fd)
    return None  # an old master during a USR2 upgrade: it keeps reporting


def write(directory: str, state: dict) -> None:
    tmp = os.path.join(directory, f".{STATE_FILE}.{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(state, f)
    os.replace(tmp, os.path.join(directory, STATE_FILE))  # readers see the old or the new file, never half


def _master_running(directory: str) -> bool:
    try:
        fd = os.open(os.path.join(directory, LOCK_FILE), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock if we got it
    return False


def read(directory: str) -> dict | None:
    """The running master's state, or None when no master runs."""
    if not _master_running(directory):
        return None
    try:
        with open(os.path.join(directory, STATE_FILE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


class TierCollector:
    """gunicorn_workers, _capacity, listen backlog and its limit, read live at each scrape."""

    def __init__(self, directory: str):
        self.directory = directory

    def collect(self):
        state = read(self.directory) or {}
        workers = GaugeMetricFamily("gunicorn_workers", "Configured worker processes (0: no master runs).")
        workers.add_metric([], state.get("workers", 0))
        capacity = GaugeMetricFamily("gunicorn_workers_capacity", "Requests the tier can serve at once.")
        capacity.add_metric([], state.get("capacity", 0))
        yield workers
        yield capacity
        inodes = {lnr["inode"] for lnr in state.get("listeners", []) if lnr.get("inode")}
        if inodes:
            queues = listen.accept_queues(inodes)
            if queues:
                backlog = GaugeMetricFamily("gunicorn_listen_backlog",
                                            "Connections waiting in the listen socket's accept queue.")
                backlog.add_metric([], sum(queues.values()))
                yield backlog
            limit = GaugeMetricFamily("gunicorn_listen_backlog_limit", "Size of the listen socket's accept queue.")
            limit.add_metric([], state.get("backlog_limit", 0) * len(inodes))
            yield limit


__all__ = ["LOCK_FILE", "STATE_FILE", "TierCollector", "hold_lock", "read", "write"]
