"""Was the machine quiet while a bench ran? Load average and other processes' CPU time, from /proc.

    with Quiet() as q:       # snapshot before
        ...                  # the bench (its own children must be reaped before the block ends)
    q.report                 # dict: load before/after, others' CPU, top other processes, quiet: bool

Others' CPU = the machine's busy CPU time over the run (/proc/stat: user+nice+system+irq+softirq+steal)
minus the bench's own process tree (this process's utime+stime plus its reaped children's
cutime+cstime, plus any descendant still alive at the end). Processes of other users that came
and went during the run are therefore counted too, which a per-pid census would miss. The top
other processes (per-pid deltas of the processes alive at both ends) are listed for the record.

Quiet means: load average (1 min) before the run <= --max-load (default 0.5 on any core count),
and others' CPU <= --max-other-cpu (default 3 %) of the machine's capacity (wall x cores) during it.

Also the benches' shared parts that need no Django: the wrk runner (wrk()) and the quiet-machine
options (add_quiet_options()), so that any bench imports them without bench/web/run.py.
"""
from __future__ import annotations

import os
import re
import subprocess
import time

TICK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1


def _busy_ticks() -> int:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(comm, ppid, own ticks utime+stime, reaped children's ticks cutime+cstime) of a pid, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    rest = raw[raw.rindex(")") + 2:].split()
    return comm, int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def _census() -> dict[int, tuple[str, int, int, int]]:
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                out[int(name)] = st
    return out


def _tree(census: dict, root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, (_, ppid, _, _) in census.items():
        children.setdefault(ppid, []).append(pid)
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo += children.get(pid, [])
    return tree


class Quiet:
    def __init__(self, max_load: float = 0.5, max_other_cpu: float = 0.03):
        self.max_load, self.max_other_cpu = max_load, max_other_cpu
        self.report: dict = {}

    def __enter__(self):
        self._t0, self._busy0, self._load0 = time.monotonic(), _busy_ticks(), os.getloadavg()
        self._census0 = _census()
        me = self._census0[os.getpid()]
        self._self0 = me[2] + me[3]
        self._tree0 = _tree(self._census0, os.getpid())
        return self

    def __exit__(self, *exc):
        self.finish()
        return False

    def finish(self) -> dict:
        wall = time.monotonic() - self._t0
        busy = _busy_ticks() - self._busy0
        census = _census()
        me = census[os.getpid()]
        own = me[2] + me[3] - self._self0
        tree = _tree(census, os.getpid())
        for pid in tree - {os.getpid()}:  # descendants still alive: their CPU is in no cutime of ours yet
            before = self._census0.get(pid)
            own += census[pid][2] + census[pid][3] - ((before[2] + before[3]) if pid in self._tree0 and before else 0)
        others = []
        for pid, (comm, _, ticks, _cticks) in census.items():
            if pid in tree or pid in self._tree0 or pid not in self._census0:
                continue
            delta = ticks - self._census0[pid][2]  # its own CPU (init's cutime holds every orphan's)
            if delta > 0:
                others.append((delta, pid, comm))
        others.sort(reverse=True)
        other_s = max(0, busy - own) / TICK
        share = other_s / (wall * NCPU) if wall > 0 else 0.0
        load1 = os.getloadavg()
        self.report = {
            "wall_s": round(wall, 1), "cores": NCPU,
            "load_before": [round(x, 2) for x in self._load0], "load_after": [round(x, 2) for x in load1],
            "own_cpu_s": round(own / TICK, 1), "other_cpu_s": round(other_s, 1),
            "other_cpu_share": round(share, 4),
            "top_others": [f"{comm}[{pid}] {d / TICK:.1f}s" for d, pid, comm in others[:5]],
            "max_load": self.max_load, "max_other_cpu": self.max_other_cpu,
        }
        self.report["quiet"] = self._load0[0] <= self.max_load and share <= self.max_other_cpu
        return self.report


def wait_for_quiet(max_load: float, timeout: float) -> float:
    """Wait up to timeout seconds for the 1-minute load average to fall to max_load; return it."""
    deadline = time.monotonic() + timeout
    while os.getloadavg()[0] > max_load and time.monotonic() < deadline:
        time.sleep(5)
    return os.getloadavg()[0]


def describe(report: dict) -> str:
    r = report
    verdict = "QUIET" if r["quiet"] else "NOT QUIET (not a run of record)"
    return (f"machine: {verdict}; {r['cores']} cores, load average before {r['load_before']}, after "
            f"{r['load_after']}; other processes' CPU {r['other_cpu_s']} s over {r['wall_s']} s wall "
            f"= {r['other_cpu_share'] * 100:.1f} % of capacity (limit {r['max_other_cpu'] * 100:.0f} %, "
            f"load limit {r['max_load']}); the bench's own tree {r['own_cpu_s']} s; top others: "
            f"{', '.join(r['top_others']) or 'none'}")


__all__ = ["Quiet", "describe", "wait_for_quiet"]


def add_quiet_options(parser) -> None:
    """--max-load and --max-other-cpu (Quiet's thresholds) on an argparse parser."""
    parser.add_argument("--max-load", type=float, default=0.5, help="load average (1 min) allowed before the run")
    parser.add_argument("--max-other-cpu", type=float, default=0.03,
                        help="other processes' CPU allowed during the run, as a share of the machine")


def wrk(url: str, seconds: float, connections: int, close: bool = False) -> dict:
    """`wrk -t1 -c<connections> -d<seconds>s --latency url`: rps, p50 and p99 (ms), non-2xx/3xx responses.

    `close` sends `Connection: close`, so that every request is a new connection the kernel hands to
    whichever worker accepts first (gunicorn's sync workers close every connection anyway; uvicorn
    keeps it alive, and 4 kept connections may all sit on one of two workers for a whole run)."""
    header = ["-H", "Connection: close"] if close else []
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", *header, url],
                         capture_output=True, text=True, check=True).stdout

    def ms(label):
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50": ms("50%"), "p99": ms("99%"),
            "non2xx": int(errors[1]) if errors else 0}
