"""Start real processes for tests (Redis, gunicorn, Celery) on free loopback ports, and stop them."""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, message: str, interval: float = 0.2):
    """Poll until predicate() is truthy; return its value or fail with message."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise  # the predicate saw a fatal state (a process died): fail now, not at the timeout
        except Exception as exc:  # the thing polled is not up yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s: {message}" + (f" (last error: {last_exc})" if last_exc else ""))


class Proc:
    """A child process in its own session, with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path, cwd: Path = ROOT):
        self.name, self.args = name, args
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)

    def stop(self, timeout: float = 15.0) -> None:
        """TERM the process, then KILL its whole group if it lingers."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)  # children the leader left behind
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def _wait_or_stop(proc: Proc, predicate: Callable[[], object], timeout: float, message: str) -> None:
    """Wait for a just-started process to be ready; stop it if it never gets there."""
    try:
        wait_for(predicate, timeout, message)
    except BaseException:
        proc.stop()
        raise


def app_env(var_dir: Path, broker_url: str, **overrides: str) -> dict:
    """Environment of an app process: production settings, state under var_dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "JOBS_", "DRILLS_"))}
    env.update({
        "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "DJANGO_ENV": "production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_SECURE_COOKIES": "0",
        "DJANGO_SECURE_HSTS_SECONDS": "0",
        "OPS_VAR_DIR": str(var_dir),
        "DATABASE_URL": f"sqlite:///{var_dir / 'db.sqlite3'}",
        "CELERY_BROKER_URL": broker_url,
        # Production requires API tokens; test stacks opt out by name (tests/hostile sets tokens).
        "JOBS_API_AUTH": "off",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(overrides)
    return env


def migrate(env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], env=env, cwd=ROOT, check=True,
                   capture_output=True)


def start_redis(var_dir: Path, port: int | None = None) -> tuple[Proc, int]:
    port = port or free_port()
    data = var_dir / f"redis-{port}"
    data.mkdir(parents=True, exist_ok=True)
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    proc = Proc(f"redis-{port}", [server, "--bind", HOST, "--port", str(port), "--dir", str(data),
                                  "--appendonly", "yes", "--appendfsync", "always", "--save", "",
                                  "--daemonize", "no"], os.environ.copy(), var_dir)

    def ready():
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")

    _wait_or_stop(proc, ready, 15, f"redis on port {port}")
    return proc, port


def start_gunicorn(env: dict, var_dir: Path, name: str = "web", app: str = "app.wsgi:application",
                   port: int | None = None, extra: list[str] | None = None) -> tuple[Proc, str]:
    port = port or free_port()
    (var_dir / "run").mkdir(parents=True, exist_ok=True)
    env = {**env, "GUNICORN_NAME": name}
    args = [str(VENV_BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind", f"{HOST}:{port}",
            *(extra or []), app]
    proc = Proc(f"gunicorn-{name}-{port}", args, env, var_dir)
    url = f"http://{HOST}:{port}"

    def up():
        assert proc.alive(), f"gunicorn exited:\n{proc.log()[-3000:]}"
        return requests.get(f"{url}/healthz", timeout=2).status_code == 200

    _wait_or_stop(proc, up, 30, f"gunicorn {name} on {url}")
    return proc, url


def start_celery_worker(env: dict, var_dir: Path, name: str = "w1", queues: str = "default,imports,exports",
                        concurrency: int = 2, extra: list[str] | None = None) -> Proc:
    args = [str(VENV_BIN / "celery"), "-A", "app", "worker", "-Q", queues, "-c", str(concurrency),
            "-n", f"{name}@%h", "-E", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
            *(extra or [])]
    proc = Proc(f"celery-{name}", args, env, var_dir)

    def ready():
        assert proc.alive(), f"{proc.name} exited:\n{proc.log()[-3000:]}"
        return "ready." in proc.log()

    _wait_or_stop(proc, ready, 60, f"celery worker {name} ready")
    return proc
