"""Run fault drills against a local stack: inject, wait for the alerts, remove, wait for quiet.

The stack is the one `make up` runs (scripts/up.sh under supervisord), started here with its
own ports and var folder and, for drills, time-compressed rules (docs/drills.md). Faults come
from the app's drill endpoints and tasks and from real process faults (supervisorctl).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from ops.drills.procs import (HOST, ROOT, Proc, free_ports, http, identities, process_tree, same_processes,
                              stack_pids, stop_pids, wait_for)

PORT_VARS = ("WEB_PORT", "ASGI_PORT", "WEB_METRICS_PORT", "ASGI_METRICS_PORT", "FLOWER_PORT", "EXPORTER_PORT",
             "REDIS_PORT", "REDIS_EXPORTER_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "INBOX_PORT",
             "NGINX_PORT", "NGINX_ASGI_PORT", "NGINX_STATUS_PORT", "NGINX_EXPORTER_PORT", "NGINX_LOG_EXPORTER_PORT")

# The drill stack: rules 20x faster, 1 s scrapes, notifications within seconds, small pools so a
# few requests saturate them, and a short gunicorn timeout for the worker-timeout drill.
DRILL_ENV = {
    "OPS_RULES_COMPRESS": "20",
    "OPS_SCRAPE_INTERVAL": "1s",
    "OPS_EVALUATION_INTERVAL": "1s",
    "OPS_ALERTMANAGER_FAST": "1",
    "OPS_TRAFFIC_RATE": "3",
    "DRILLS_ENABLED": "1",
    "GUNICORN_WORKERS": "2",
    "ASGI_WORKERS": "1",
    "GUNICORN_TIMEOUT": "6",
    # nginx gives up after gunicorn, as in production (docs/proxy.md "Timeouts"): 6 s < 12 s.
    "NGINX_PROXY_READ_TIMEOUT": "12",
    "DRILLS_TIMEOUT_SLEEP_SECONDS": "10",
    "CELERY_CONCURRENCY": "2",
    # The drills' own environment: relaxed like development, the only other one that accepts
    # DRILLS_ENABLED=1 (production refuses it).
    "DJANGO_ENV": "drills",
    # Job deadlines compressed like the rules (900 s / 20), and lost messages re-published after
    # 90 s: JobsStuck fires before the sweeper recovers a lost message (the lost-message drill).
    # The running and retrying deadlines stay: settings keep them above the time limit and backoff.
    "JOBS_DEADLINE_QUEUED_SECONDS": "45",
    "JOBS_REQUEUE_LOST_AFTER_SECONDS": "90",
}


# supervisord stops every program in a few seconds (its own KILL comes only after stopwaitsecs=40):
# a test stack needs no graceful end, so past this its leftovers are KILLed (Stack.stop).
STOP_GRACE_SECONDS = 15.0
# Stack.start tries again once, with fresh ports, when a stack does not come up: free_ports
# picks ports free at that moment, and another process may bind one before the stack does.
START_ATTEMPTS = 2


class DrillFailed(AssertionError):
    """A drill's expectation was not met; the message says which and what was seen."""


def api_token(env: dict | None = None) -> str:
    """Return a stack's API token: its OPS_API_TOKEN, else $OPS_VAR_DIR/api_token, else '' (tokens off).

    env is the stack's environment (default: this process's), never mixed with another stack's.
    """
    env = os.environ if env is None else env
    token = env.get("OPS_API_TOKEN", "").strip()
    if token:
        return token
    path = Path(env.get("OPS_VAR_DIR", ROOT / "var")) / "api_token"
    try:
        return path.read_text().strip()
    except OSError:
        return ""


@dataclass
class Stack:
    """A running local stack, addressed by its environment (ports and var folder)."""

    env: dict
    proc: Proc | None = None
    # {pid: start time} of supervisord's processes, recorded by stop() before supervisord goes
    _children: dict[int, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    @classmethod
    def start(cls, var_dir: Path, extra_env: dict | None = None, timeout: float = 120.0) -> "Stack":
        """Start scripts/up.sh on fresh ports and wait until every target is up.

        A start that fails (a port taken before the stack bound it, most likely) is stopped
        completely and tried once more on fresh ports; the second failure is raised.
        """
        for attempt in range(1, START_ATTEMPTS):
            try:
                return cls._start(var_dir, extra_env, timeout)
            except Exception as exc:  # _start stopped it; an interrupt (BaseException) is not retried
                print(f"drills: the stack under {var_dir} did not start ({type(exc).__name__}: {exc}); "
                      f"trying again on fresh ports (attempt {attempt + 1} of {START_ATTEMPTS})",
                      file=sys.stderr, flush=True)
        return cls._start(var_dir, extra_env, timeout)

    @classmethod
    def _start(cls, var_dir: Path, extra_env: dict | None, timeout: float) -> "Stack":
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "OPS_", "GUNICORN_"))}
        env.update(zip(PORT_VARS, map(str, free_ports(len(PORT_VARS)))))  # distinct, also across stacks
        env.update(DRILL_ENV)
        env.update(extra_env or {})
        env["OPS_VAR_DIR"] = str(var_dir)
        proc = Proc("up", [str(ROOT / "scripts/up.sh")], env, var_dir)  # its output: var_dir/up.log
        stack = cls(env=env, proc=proc)
        try:
            stack.wait_ready(timeout)
        except BaseException:
            stack.stop()
            raise
        return stack

    def url(self, port_var: str) -> str:
        return f"http://{HOST}:{self.env[port_var]}"

    @property
    def var_dir(self) -> Path:
        return Path(self.env["OPS_VAR_DIR"])

    def auth(self) -> dict:
        """Return the Authorization header of the stack's API token ({} when it runs without one)."""
        token = api_token(self.env)  # Stack.start drops OPS_* of the caller: the drill stack's own token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def api(self, path: str, data: bytes | None = None, headers: dict | None = None, timeout: float = 10.0):
        """Call the jobs API of the WSGI tier with the token; return (status, body bytes)."""
        return http(self.url("WEB_PORT") + path, data, timeout, headers={**self.auth(), **(headers or {})})

    def db(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run a read-only query on the stack's SQLite database (what the jobs really are)."""
        import sqlite3

        uri = f"file:{self.var_dir / 'db.sqlite3'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def wait_ready(self, timeout: float) -> None:
        def ready():
            if self.proc and not self.proc.alive():
                raise DrillFailed(f"the stack exited; see {self.var_dir}/up.log and {self.var_dir}/log/")
            targets = self.prom("/api/v1/targets")["activeTargets"]
            down = [t["labels"]["job"] for t in targets if t["health"] != "up"]
            return len(targets) >= 8 and not down
        wait_until(ready, timeout, "every scrape target of the stack to be up")

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop every process of the stack, bounded.

        supervisord is this process's child: TERM it (it stops every program, each as a group, in
        a few seconds) and reap it here, KILL it if it outlives `grace`. Not scripts/down.sh
        first: its `kill -0` wait sees an unreaped child of ours as alive (a zombie), so it waited
        its full 60 s every time. Whatever outlives supervisord (a program it could not stop, the
        drills' own extra worker) is TERMed, then KILLed after 5 s: the processes under supervisord
        when the stop began, and any whose environment is the stack's (its OPS_VAR_DIR).

        Calling it again is safe: it only sweeps what is still the stack's (a drill may have
        started a process after the first stop). A pid is signalled only while it is the process
        recorded (its start time), never one that reused the pid.
        """
        if self.proc is None:  # a stack this process did not start: the stack's own stop
            subprocess.run([str(ROOT / "scripts/down.sh")], cwd=ROOT, env=self.env, capture_output=True, timeout=180)
            return
        if self.proc.alive():  # not yet reaped, so its pid is still supervisord's: record its children
            self._children.update(identities(process_tree(self.proc.pid) - {self.proc.pid}))
        self.proc.stop(timeout=grace)  # a no-op once stopped

        def left() -> dict[int, int]:  # {pid: start time} of what is still the stack's
            children = {pid: self._children[pid] for pid in same_processes(self._children)}
            return {**identities(stack_pids(self.var_dir, by_command_line=False)), **children}
        stop_pids(left, grace=5.0)

    # --- what the stack shows ---------------------------------------------------------------
    def prom(self, path: str, **params) -> dict | list:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, body = http(self.url("PROMETHEUS_PORT") + path + query)
        if status != 200:
            raise RuntimeError(f"Prometheus {path}: HTTP {status}")
        return json.loads(body)["data"]

    def query(self, expr: str) -> list:
        return self.prom("/api/v1/query", query=expr)["result"]

    def alerts(self, state: str = "firing") -> set[str]:
        return {a["labels"]["alertname"] for a in self.prom("/api/v1/alerts")["alerts"] if a["state"] == state}

    def notifications(self) -> list[dict]:
        status, body = http(self.url("INBOX_PORT") + "/api/notifications")
        if status != 200:
            raise RuntimeError(f"inbox: HTTP {status}")
        data = json.loads(body)
        return data["notifications"] if isinstance(data, dict) else data

    # --- process faults ---------------------------------------------------------------------
    def supervisorctl(self, *args: str) -> str:
        conf = self.var_dir / "ops/supervisord.conf"
        ctl = Path(sys.executable).parent / "supervisorctl"  # the venv's, PATH or not
        out = subprocess.run([str(ctl), "-c", str(conf), *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=60)
        return out.stdout + out.stderr

    def program_pid(self, name: str) -> int:
        out = self.supervisorctl("pid", name).strip()
        if not out.isdigit() or out == "0":
            raise DrillFailed(f"{name} is not running: {out!r}")
        return int(out)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.5):
    """Poll until predicate() is truthy (the stack may be momentarily unreachable); raise DrillFailed at the timeout."""
    return wait_for(predicate, timeout, f"waiting for {what}", interval=interval, error=DrillFailed)


class Load:
    """Closed-loop load: `clients` threads request `url` back to back until stopped."""

    def __init__(self, url: str, clients: int, timeout: float = 30.0, pause: float = 0.0,
                 headers: dict | None = None):
        self.url, self.timeout, self.pause, self.headers = url, timeout, pause, headers or {}
        self._stop = threading.Event()
        self.sent = 0
        self.statuses: dict[int, int] = {}
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _ = http(self.url, timeout=self.timeout, headers=self.headers)
            except (OSError, urllib.error.URLError):
                status = 0
            with self._lock:
                self.sent += 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
            if self.pause:
                self._stop.wait(self.pause)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)


@dataclass
class Result:
    name: str
    expected: list[str]
    fired: dict[str, float] = field(default_factory=dict)  # alert -> seconds from injection to firing
    notified: dict[str, float] = field(default_factory=dict)  # alert -> seconds to reach the inbox
    inhibited: set[str] = field(default_factory=set)  # held back by an Alertmanager inhibition rule
    resolved_after: float | None = None  # seconds from removal until no expected alert fired
    seen: set[str] = field(default_factory=set)  # every alert that fired during the drill
    unexpected: set[str] = field(default_factory=set)
    diagnosis: dict = field(default_factory=dict)  # alert -> its runbook queries' results while it fired
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    window: tuple[float, float, float] | None = None  # injected, removed, ended (unix times)
    error: str | None = None
    stack: str = ""  # which stack ran it, when several run at once (ops/drills/lanes.py)
    duration: float | None = None  # seconds, its wait for a quiet stack included

    @property
    def ok(self) -> bool:
        return self.error is None and set(self.expected) <= set(self.fired) and not self.unexpected

    def summary(self) -> dict:
        return {
            "drill": self.name, "ok": self.ok, "expected": self.expected,
            "time_to_fire_seconds": {k: round(v, 1) for k, v in self.fired.items()},
            "time_to_notify_seconds": {k: round(v, 1) for k, v in self.notified.items()},
            "inhibited": sorted(self.inhibited),
            "resolved_after_seconds": None if self.resolved_after is None else round(self.resolved_after, 1),
            "alerts_seen": sorted(self.seen), "unexpected": sorted(self.unexpected), "error": self.error,
            "stack": self.stack, "duration_seconds": None if self.duration is None else round(self.duration, 1),
        }
