"""In-process cost per request of each instrumentation layer (no gunicorn, no socket).

    .venv/bin/python -m bench.web.profile_request [--layer NAME ...] [--n N] [--rounds 5] [--path /healthz] [--profile]

(about 1 minute for every layer, 5 rounds)

One process per layer (bench/web/layers.py: settings, environment, WSGI or ASGI), kept alive;
the layers take turns, --rounds times (order rotated each round), each turn timing --n requests (default: as many as take about 0.5 s)
called straight into the application: the WSGI callable with a minimal environ, or the ASGI
application in one event loop with a minimal scope. Multiprocess mode as under gunicorn (a
temporary PROMETHEUS_MULTIPROC_DIR for every layer but bare; the slot claimed as a worker does)
and the timeout evidence armed (evidence.arm(), as gunicorn's post_worker_init does). Prints
µs of CPU per request (time.process_time() of the layer's process, so that the time other
processes take from a shared machine is left out; --clock wall for the wall clock): the median
over rounds and the min-max; --profile adds a cProfile of each layer.

bench/web/run.py uses Pool below for its in-process column. bench/web/marginal.py gives
RequestMiddleware's own cost alone (a difference within one process; under valgrind, in
instructions, which no neighbour on a shared machine can move).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.web.layers import VIEWS, layers
from tests.support.fake_sentry import FakeSentry

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import asyncio, cProfile, io, json, os, pstats, sys, time
layer = json.loads(sys.argv[1])
ours = layer["ours"]
import django_celery_ops  # the slot-file storage, before any metric exists
from django_celery_ops import multiprocess
if ours:
    multiprocess.setup("worker")
    from django_celery_ops import sentry
    sentry.init()
import django
django.setup()
import logging
logging.getLogger("django_celery_ops.loop_lag").setLevel(logging.ERROR)  # the loop idles between turns, by design
import tempfile
from django_celery_ops import evidence
evidence.arm(tempfile.mkdtemp(prefix="evidence-", dir=os.environ["OPS_VAR_DIR"]))
module, _, attr = layer["app"].partition(":")
import importlib
application = getattr(importlib.import_module(module), attr)

def wsgi_one(path):
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
               "SERVER_PORT": "8000", "HTTP_HOST": "localhost", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
               "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
               "HTTP_USER_AGENT": "wrk", "REMOTE_ADDR": "127.0.0.1"}
    def start_response(status, headers, exc_info=None):
        assert status.startswith("200"), status
    body = application(environ, start_response)
    for _ in body:
        pass
    body.close()

async def asgi_one(path):
    sent = []
    async def receive():
        if not sent:
            sent.append(1)
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: Django cancels this listener when the response is done
    async def send(message):
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message["status"]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"host", b"localhost"), (b"user-agent", b"wrk")], "client": ("127.0.0.1", 40000),
             "server": ("localhost", 8001)}
    await application(scope, receive, send)

loop = asyncio.new_event_loop()

def batch(n, path):
    if layer["tier"] == "asgi":
        async def run():
            for _ in range(n):
                await asgi_one(path)
        loop.run_until_complete(run())
    else:
        for _ in range(n):
            wsgi_one(path)

for path in layer["paths"]:
    batch(300, path)  # warm-up: label children, caches, connections
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.split()
    n, path = int(cmd[1]), cmd[2]
    if cmd[0] == "time":
        t, c = time.perf_counter(), time.process_time()
        batch(n, path)
        c, t = time.process_time() - c, time.perf_counter() - t
        print(json.dumps({"us": t / n * 1e6, "cpu_us": c / n * 1e6}), flush=True)
    elif cmd[0] == "profile":
        pr = cProfile.Profile()
        pr.enable()
        batch(n, path)
        pr.disable()
        s = io.StringIO()
        pstats.Stats(pr, stream=s).sort_stats(os.environ.get("SORT", "tottime")).print_stats(os.environ.get("FILTER", ""), 35)
        print(json.dumps({"profile": s.getvalue()}), flush=True)
"""


def _env(base: dict, layer: dict, var: Path, dsn: str) -> dict:
    env = {k: v for k, v in base.items() if not k.startswith(("DJANGO_", "PROMETHEUS_", "SENTRY_", "OBS_PROFILE"))}
    env.update({"DJANGO_ENV": "test", "OPS_VAR_DIR": str(var), "DRILLS_ENABLED": "1",
                "DATABASE_URL": f"sqlite:///{var.parent / 'db.sqlite3'}", "DJANGO_SETTINGS_MODULE": layer["settings"]})
    env.update({k: v.format(dir=var / "prometheus", dsn=dsn) for k, v in layer["env"].items()})
    return env


def seed_database(env: dict) -> None:
    """Migrate and fill the db view's table (500 jobs), once for every layer's processes."""
    env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
    code = ("from app.jobs.models import Job; import random; random.seed(1); "
            "Job.objects.all().delete(); "
            "Job.objects.bulk_create([Job(kind=random.choice(['import','export']), "
            "state=random.choice(['queued','running','succeeded','failed']), progress=random.randint(0,100)) "
            "for _ in range(500)])")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], env=env, cwd=ROOT, check=True)


class Pool:
    """One live process per layer; time(name, path, n) -> µs per request."""

    def __init__(self, chosen: dict[str, dict], workdir: Path, dsn: str):
        self.procs = {}
        base = dict(os.environ)
        first = True
        for name, layer in chosen.items():
            var = workdir / f"inproc-{len(self.procs)}"
            (var / "prometheus").mkdir(parents=True)
            env = _env(base, layer, var, dsn)
            if first:
                seed_database({**env, "DJANGO_SETTINGS_MODULE": "app.settings"})
                first = False
            spec = {**layer, "paths": [VIEWS[v] for v in layer["views"]]}
            proc = subprocess.Popen([sys.executable, "-c", _CHILD, json.dumps(spec)], env=env, cwd=ROOT,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.procs[name] = proc
        for name, proc in self.procs.items():
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"in-process layer {name} did not start (exit {proc.poll()})")

    def _ask(self, name: str, cmd: str) -> dict:
        proc = self.procs[name]
        proc.stdin.write(cmd + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    def time(self, name: str, path: str, n: int, clock: str = "cpu") -> float:
        """µs per request: of the process's CPU time (clock "cpu", every thread; the time the machine
        gave to other processes left out) or of the wall clock ("wall")."""
        answer = self._ask(name, f"time {n} {path}")
        return answer["cpu_us"] if clock == "cpu" else answer["us"]

    def profile(self, name: str, path: str, n: int) -> str:
        return self._ask(name, f"profile {n} {path}")["profile"]

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stdin.close()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def rounds(pool: Pool, chosen: dict[str, dict], n: int | None, count: int, only_path: str | None = None,
           turn_seconds: float = 0.5, clock: str = "cpu") -> dict:
    """{(layer, view): [µs per round]}, the layers taking turns in a rotated order each round.

    n None: each (layer, view) times as many requests as fill about turn_seconds (from 100 first).
    """
    units = [(name, view) for name, layer in chosen.items() for view in layer["views"]
             if only_path is None or VIEWS[view] == only_path]
    sizes = {u: n or max(100, min(5000, int(turn_seconds * 1e6 / pool.time(u[0], VIEWS[u[1]], 100)))) for u in units}
    out: dict = {u: [] for u in units}
    for r in range(count):
        k = r % len(units)
        for name, view in units[k:] + units[:k]:
            out[name, view].append(pool.time(name, VIEWS[view], sizes[name, view], clock))
    out["sizes"] = sizes
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layer", action="append", help="layer name (bench/web/layers.py); default: all")
    parser.add_argument("--n", type=int, default=None, help="requests per turn (default: about 0.5 s worth)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--path", default=None, help="only this view's path (default: each layer's views)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    every = layers()
    chosen = {k: v for k, v in every.items() if not args.layer or k in args.layer}
    with tempfile.TemporaryDirectory(prefix="profile-web-") as tmp, FakeSentry() as sentry:
        pool = Pool(chosen, Path(tmp), sentry.dsn)
        try:
            result = rounds(pool, chosen, args.n, args.rounds, args.path, clock=args.clock)
            sizes = result.pop("sizes")
            for (name, view), us in result.items():
                print(f"{name:32s} {view:8s} median {statistics.median(us):7.1f} µs/request "
                      f"(min {min(us):.1f}, max {max(us):.1f}, {len(us)} rounds x {sizes[name, view]})")
            if args.profile:
                for (name, view) in result:
                    print(f"--- {name} {view}\n{pool.profile(name, VIEWS[view], sizes[name, view])}")
        finally:
            pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
