"""Read the accept queue of listening TCP sockets from the kernel.

For a socket in LISTEN state, /proc/net/tcp{,6} shows in rx_queue the connections the kernel
has completed but nobody accept()ed yet: requests waiting for a free worker. This works from
any process in the same network namespace (a sidecar in the same pod included), so the
metrics endpoint can read it while every worker is busy.
"""
from __future__ import annotations

import os
import socket

_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_LISTEN = "0A"


def socket_inode(sock: socket.socket) -> int:
    return os.fstat(sock.fileno()).st_ino


def accept_queues(inodes: set[int], tables: tuple[str, ...] = _TABLES) -> dict[int, int]:
    """Connections waiting in the accept queue of each listening socket found, by inode."""
    found: dict[int, int] = {}
    for table in tables:
        try:
            with open(table) as f:
                next(f, None)  # header
                for line in f:
                    # sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
                    fields = line.split()
                    if len(fields) < 10 or fields[3] != _LISTEN:
                        continue
                    inode = int(fields[9])
                    if inode in inodes:
                        found[inode] = int(fields[4].split(":")[1], 16)
        except OSError:
            continue
    return found


def backlog_limit(configured: int) -> int:
    """The accept queue size the kernel really grants: listen()'s backlog capped by somaxconn."""
    try:
        with open("/proc/sys/net/core/somaxconn") as f:
            return min(configured, int(f.read()))
    except (OSError, ValueError):
        return configured


__all__ = ["accept_queues", "backlog_limit", "socket_inode"]
