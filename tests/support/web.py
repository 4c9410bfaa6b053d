"""Start a web tier for tests: gunicorn (WSGI or ASGI) plus its metrics server, and read its metrics."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support import stack

ASGI_WORKER = "app.api.workers.UvicornWorker"


@dataclass
class Tier:
    url: str
    metrics_url: str
    metrics_dir: Path
    gunicorn: stack.Proc
    metrics_server: stack.Proc
    procs: list = field(default_factory=list)

    def scrape(self, timeout: float = 5) -> dict:
        return scrape(self.metrics_url, timeout)

    def master_pid(self) -> int:
        return self.gunicorn.pid

    def worker_pids(self) -> set[int]:
        return worker_pids(self.gunicorn.pid)


def scrape(metrics_url: str, timeout: float = 5) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape."""
    text = requests.get(metrics_url, timeout=timeout).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels) -> float:
    """The sum of the samples of a name whose labels include these (0 when there is none)."""
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= lbl)


def worker_pids(master_pid: int) -> set[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children")
    try:
        return {int(p) for p in children.read_text().split()}
    except OSError:
        return set()


def start_metrics_server(env: dict, var_dir: Path, name: str) -> tuple[stack.Proc, str]:
    port = stack.free_port()
    proc = stack.Proc(f"metrics-{name}-{port}", [str(stack.VENV_BIN / "python"), "-m", "django_celery_ops.metrics_server",
                                                 "--port", str(port)], env, var_dir)
    url = f"http://{stack.HOST}:{port}/metrics"

    def up():
        assert proc.alive(), f"metrics server exited:\n{proc.log()[-3000:]}"
        return requests.get(url, timeout=2).status_code == 200

    stack.wait_for(up, 30, f"metrics server on {url}")
    return proc, url


def start_tier(procs: list, var_dir: Path, name: str = "web", asgi: bool = False, workers: int = 2,
               extra: list[str] | None = None, **env_overrides: str) -> Tier:
    """gunicorn + metrics server with their own multiprocess folder; both go into procs for clean-up."""
    metrics_dir = var_dir / "prometheus" / name
    # The drill endpoints are refused in production: the tier runs the drills environment.
    env = stack.app_env(var_dir, "redis://127.0.0.1:1/0", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                        GUNICORN_WORKERS=str(workers), DRILLS_ENABLED="1", **{"DJANGO_ENV": "drills", **env_overrides})
    metrics_proc, metrics_url = start_metrics_server(env, var_dir, name)
    procs.append(metrics_proc)
    args = list(extra or [])
    if asgi:
        args += ["--worker-class", ASGI_WORKER]
    proc, url = stack.start_gunicorn(env, var_dir, name=name, app="app.asgi:application" if asgi else "app.wsgi:application",
                                     extra=args)
    procs.append(proc)
    stack.wait_for(lambda: len(worker_pids(proc.pid)) == workers, 30, f"{workers} workers of {name}")
    return Tier(url, metrics_url, metrics_dir, proc, metrics_proc)


def open_idle_connections(url: str, count: int) -> list[socket.socket]:
    """Connections the kernel completes but no busy worker accepts: they wait in the listen backlog."""
    host, port = url.rsplit("//", 1)[1].split(":")
    conns = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)), timeout=5)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        conns.append(sock)
    return conns
