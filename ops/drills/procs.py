"""Start real processes on free loopback ports, wait until they are ready, and stop them.

The one process helper of the project: the drills (`python -m ops.drills`) and the tests use
it alike. Every process runs in its own session with its output in `<log_dir>/<name>.log`;
`stop()` ends its whole process group, and processes still running when the interpreter
exits are stopped by an atexit hook, so a failing test never leaves a server behind.
Everything binds 127.0.0.1.

    with start_inbox(tmp / "inbox") as inbox, \\
         start_alertmanager(tmp / "am", inbox.url, timings={"group_wait": "1s"}) as am, \\
         start_prometheus(tmp / "prom", rules_dir=compressed, targets={"django-wsgi": ["127.0.0.1:9100"]},
                          alertmanager=am, scrape_interval="1s") as prom:
        ...
"""
from __future__ import annotations

import atexit
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
PROMETHEUS_DIR = ROOT / "ops" / "prometheus"
ALERTMANAGER_DIR = ROOT / "ops" / "alertmanager"
INBOX_SCRIPT = ROOT / "ops" / "inbox" / "inbox.py"
PROMETHEUS_JOBS = ("django-wsgi", "django-asgi", "celery-exporter", "redis", "prometheus", "alertmanager", "nginx",
                   "nginx-log")
PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "alertmanager"
STARTUP_TIMEOUT_SECONDS = 30

_running: list[Proc] = []


# --- waiting and asking --------------------------------------------------------------------------

def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


_handed_out: set[int] = set()
_handed_out_lock = threading.Lock()


def free_ports(count: int) -> list[int]:
    """Return `count` distinct ports free on 127.0.0.1 now, none returned before by this function.

    All are held open while choosing, so they differ from each other; the record keeps stacks
    started at once (ops/drills/lanes.py) from sharing a port.
    """
    with _handed_out_lock:
        held, ports = [], []
        try:
            while len(ports) < count:
                sock = socket.socket()
                held.append(sock)  # held until all are chosen, the ones refused too
                sock.bind((HOST, 0))
                if sock.getsockname()[1] not in _handed_out:
                    ports.append(sock.getsockname()[1])
        finally:
            for sock in held:
                sock.close()
        _handed_out.update(ports)
        return ports


def wait_for(predicate: Callable[[], object], timeout: float, message: str, interval: float = 0.2,
             error: type[Exception] = AssertionError):
    """Poll until predicate() is truthy; return its value, or raise error(message) at the timeout.

    An AssertionError from the predicate means a fatal state (a process died): it ends the wait
    at once. Any other exception means "not up yet" and is retried.
    """
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except AssertionError:
            raise
        except Exception as exc:  # the thing polled is not up yet
            last_exc = exc
        time.sleep(interval)
    raise error(f"timed out after {timeout:g} s: {message}" + (f" (last error: {last_exc})" if last_exc else ""))


def http(url: str, data: bytes | None = None, timeout: float = 10.0, method: str | None = None,
         headers: dict | None = None) -> tuple[int, bytes]:
    """Return (status, body bytes); HTTP errors are answers, not exceptions."""
    req = urllib.request.Request(url, data=data, method=method or ("POST" if data is not None else "GET"),
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def load_module(path):
    """Import a script of ops/ that is not in a package, by its path."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"ops_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- processes ---------------------------------------------------------------------------------------

class Proc:
    """A child process in its own session, with its output in log_dir/<name>.log."""

    def __init__(self, name: str, args: list[str], env: dict, log_dir: Path, cwd: Path = ROOT):
        self.name, self.args = name, args
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        self.log_path = Path(log_dir) / f"{name}.log"
        self._log = open(self.log_path, "ab")
        self._stopped = False
        self.popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        _running.append(self)

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
        """TERM the process group, then KILL it if it lingers (children the leader left behind too)."""
        if self._stopped:
            return
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
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()
        self._stopped = True
        if self in _running:
            _running.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class Service(Proc):
    """A server process answering HTTP at url."""

    def __init__(self, name: str, args: list[str], env: dict, workdir: Path, url: str, cwd: Path | None = None):
        self.url, self.workdir = url, Path(workdir)
        super().__init__(name, args, env, workdir, cwd=cwd or workdir)

    @property
    def address(self) -> str:
        """Return host:port, as a Prometheus target."""
        return self.url.split("://", 1)[1].rstrip("/")


def _processes() -> dict[int, int]:
    """{pid: parent pid} of every live process (zombies are dead: left out)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                state, parent = _stat_fields(f.read())[:2]
        except (OSError, ValueError):
            continue
        if state != b"Z":
            parents[int(entry)] = int(parent)
    return parents


def _with_descendants(pids: set[int], parents: dict[int, int]) -> set[int]:
    pids = set(pids)
    while children := {pid for pid, parent in parents.items() if parent in pids} - pids:
        pids |= children
    return pids


def _ancestors(pid: int, parents: dict[int, int]) -> set[int]:
    found = set()
    while pid in parents and pid not in found:
        found.add(pid)
        pid = parents[pid]
    return found


def alive_pids(pids) -> set[int]:
    """Those of pids still alive (a zombie is dead)."""
    return set(pids) & _processes().keys()


def _stat_fields(stat: bytes) -> list[bytes]:
    """The fields of a /proc/PID/stat line after comm, from field 3 (state) on.

    comm (field 2) is in parentheses and may hold spaces and parentheses itself: split after the
    last ')'.
    """
    return stat.rpartition(b")")[2].split()


def _start_time(pid: int) -> tuple[int, bool] | None:
    """(starttime, is a zombie) of pid, from /proc/PID/stat (field 22: clock ticks after boot), or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = _stat_fields(f.read())
        return int(fields[19]), fields[0] == b"Z"  # fields[0] is field 3
    except (OSError, ValueError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """The start time of process pid (a pid and its start time name one process), or None if it is gone."""
    found = _start_time(pid)
    return None if found is None else found[0]


def identities(pids) -> dict[int, int]:
    """{pid: start time} of those of pids alive now: record it when collecting pids to signal later."""
    found = {pid: _start_time(pid) for pid in pids}
    return {pid: info[0] for pid, info in found.items() if info is not None and not info[1]}


def same_processes(recorded: dict[int, int]) -> set[int]:
    """Those recorded pids that are still the process recorded (same start time) and alive (not a zombie).

    A pid whose process ended may be reused by an unrelated process: only these may be signalled.
    """
    return {pid for pid, started in recorded.items() if _start_time(pid) == (started, False)}


def signal_process(pid: int, started: int, sig: int) -> bool:
    """Send sig to pid only if it is still the process that started at `started`; True if sent.

    The pid is pinned with a pidfd before its start time is compared, so it cannot be reused
    between the check and the signal.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, PermissionError):
        return False
    except OSError:  # no pidfd (an old kernel): check, then signal by pid
        pidfd = None
    try:
        if start_time(pid) != started:
            return False
        if pidfd is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(pidfd, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd is not None:
            os.close(pidfd)


def process_tree(pid: int) -> set[int]:
    """pid and every live descendant of it."""
    parents = _processes()
    return _with_descendants({pid}, parents) if pid in parents else set()


def stack_pids(var_dir, by_command_line: bool = True) -> set[int]:
    """Every live process of a stack (scripts/up.sh) whose state is var_dir, and their descendants.

    Its environment names the var folder (OPS_VAR_DIR), or (by_command_line) its command line
    does: nginx writes its process title over its environment, but its master's command line
    names the folder, and its workers are the master's children. This process and its
    ancestors are never counted (a shell or `timeout` that started it may name the folder too).
    """
    env_needle, path_needle = f"OPS_VAR_DIR={var_dir}".encode(), str(var_dir).encode()
    parents = _processes()
    own = _ancestors(os.getpid(), parents)
    pids = set()
    for pid in parents.keys() - own:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
            cmdline = b""
            if by_command_line:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
        except OSError:
            continue
        if env_needle in environ or path_needle in cmdline:
            pids.add(pid)
    return _with_descendants(pids, parents) - own


def stop_pids(find: Callable[[], set[int] | dict[int, int]], grace: float = 5.0) -> set[int]:
    """TERM every process find() returns, wait up to grace seconds for them to go, KILL what is left.

    find() is asked again while waiting (a dying parent may leave children). It returns pids, or
    {pid: start time} as recorded when it collected them (identities()); a bare pid's start time
    is recorded when find() first returns it. A pid is signalled only while it is still that
    process: one whose pid was reused meanwhile is left alone. Returns the pids that had to be killed.
    """
    recorded: dict[int, int] = {}

    def current() -> set[int]:
        found = find()
        if isinstance(found, dict):
            recorded.update(found)
        else:
            recorded.update(identities(set(found) - recorded.keys()))
        return set(found) & same_processes(recorded)

    def signal_all(pids, sig) -> set[int]:
        return {pid for pid in pids if signal_process(pid, recorded[pid], sig)}

    signal_all(current(), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while (left := current()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return signal_all(left, signal.SIGKILL)


@atexit.register
def _stop_all() -> None:
    for proc in list(_running):
        proc.stop()


def _wait_or_stop(proc: Proc, predicate: Callable[[], object], timeout: float, message: str) -> None:
    """Wait for a just-started process to be ready; stop it if it never gets there."""
    try:
        wait_for(predicate, timeout, message)
    except BaseException:
        proc.stop()
        raise


def start_service(name: str, workdir, command_for_port: Callable[[int], list[str]], ready_path: str,
                  port: int | None = None, env: dict | None = None) -> Service:
    """Start command_for_port(port) and wait until GET ready_path answers 200; retry on a port race."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for _attempt in range(1 if port else 3):
        chosen = port or free_port()
        service = Service(name, command_for_port(chosen), env or os.environ.copy(), workdir, f"http://{HOST}:{chosen}")

        def ready(service=service):
            assert service.alive(), f"{name} exited"
            return http(service.url + ready_path, timeout=2)[0] == 200

        try:
            wait_for(ready, STARTUP_TIMEOUT_SECONDS, f"{name} on {service.url}", interval=0.1)
            return service
        except AssertionError:
            service.stop()
    raise RuntimeError(f"{name} did not become ready; log {service.log_path}:\n{service.log()[-3000:]}")


# --- the app's processes -----------------------------------------------------------------------------

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
        return http(f"{url}/healthz", timeout=2)[0] == 200

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


# --- the proxy ------------------------------------------------------------------------------------

NGINX_BIN = shutil.which("nginx") or "/usr/sbin/nginx"
MTAIL_BIN = shutil.which("mtail") or "/usr/bin/mtail"
NGINX_EXPORTER_BIN = shutil.which("prometheus-nginx-exporter") or "/usr/bin/prometheus-nginx-exporter"
NGINX_DIR = ROOT / "ops" / "nginx"


class Nginx(Proc):
    """nginx from ops/nginx/ (render.py) in the foreground: url -> the WSGI tier, asgi_url, status_url."""

    def __init__(self, var_dir: Path, settings: dict):
        self.settings = settings
        self.url = f"http://{HOST}:{settings['NGINX_PORT']}"
        self.asgi_url = f"http://{HOST}:{settings['NGINX_ASGI_PORT']}"
        self.status_url = f"http://127.0.0.1:{settings['NGINX_STATUS_PORT']}/stub_status"
        self.access_log = Path(var_dir) / "log" / "nginx-access.log"
        conf = load_module(NGINX_DIR / "render.py").write(settings, Path(var_dir) / "nginx.conf", var_dir)
        super().__init__(f"nginx-{settings['NGINX_PORT']}",
                         [NGINX_BIN, "-e", "stderr", "-p", str(Path(var_dir) / "nginx"), "-c", str(conf)],
                         os.environ.copy(), var_dir)


def start_nginx(var_dir, wsgi_url: str | None = None, asgi_url: str | None = None, **settings: str) -> Nginx:
    """Start nginx in front of the given tiers (URLs like http://127.0.0.1:8000) on free ports.

    settings are ops/nginx/render.py's variables (NGINX_PROXY_READ_TIMEOUT="3", ...); a tier not
    given points at a closed port (502).
    """
    var_dir = Path(var_dir)
    closed = f"{HOST}:{free_port()}"
    values = {"OPS_HOST": HOST, "NGINX_PORT": str(free_port()), "NGINX_ASGI_PORT": str(free_port()),
              "NGINX_STATUS_PORT": str(free_port()),
              "NGINX_WSGI_UPSTREAM": wsgi_url.split("://", 1)[1] if wsgi_url else closed,
              "NGINX_ASGI_UPSTREAM": asgi_url.split("://", 1)[1] if asgi_url else closed, **settings}
    proc = Nginx(var_dir, values)

    def up():
        assert proc.alive(), f"nginx exited:\n{proc.log()[-3000:]}"
        return http(proc.status_url, timeout=2)[0] == 200

    _wait_or_stop(proc, up, 15, f"nginx on {proc.url}")
    return proc


def start_mtail(workdir, access_log, port=None) -> Service:
    """Start mtail with ops/nginx/nginx.mtail over access_log (job nginx-log)."""
    Path(access_log).parent.mkdir(parents=True, exist_ok=True)
    Path(access_log).touch()
    return start_service(
        "mtail", workdir,
        lambda p: [MTAIL_BIN, "--progs", str(NGINX_DIR / "nginx.mtail"), "--logs", str(access_log),
                   "--address", HOST, "--port", str(p), "--emit_prog_label=false", "--logtostderr"],
        "/metrics", port,
    )


def start_nginx_exporter(workdir, status_url: str, port=None) -> Service:
    """Start prometheus-nginx-exporter reading nginx's stub_status (job nginx)."""
    return start_service(
        "nginx-exporter", workdir,
        lambda p: [NGINX_EXPORTER_BIN, "-nginx.scrape-uri", status_url, "-nginx.retries", "10",
                   "-nginx.retry-interval", "1s", "-web.listen-address", f"{HOST}:{p}"],
        "/metrics", port,
    )


# --- the monitoring processes ------------------------------------------------------------------------

def start_inbox(workdir, port=None) -> Service:
    """Start ops/inbox/inbox.py recording into workdir."""
    workdir = Path(workdir)
    return start_service(
        "inbox", workdir,
        lambda p: [sys.executable, str(INBOX_SCRIPT), "--host", HOST, "--port", str(p), "--dir", str(workdir)],
        "/healthz", port,
    )


def start_alertmanager(workdir, inbox_url, timings=None, port=None, config=ALERTMANAGER_DIR / "alertmanager.yml",
                       log_level="info") -> Service:
    """Render the real Alertmanager config to notify inbox_url and start Alertmanager on it.

    timings: e.g. {"group_wait": "1s", "group_interval": "1s"}, applied to every route.
    log_level "debug" logs every flush of an aggregation group (see flushes_of()).
    """
    render = load_module(ALERTMANAGER_DIR / "render.py")  # the renderer the stack launcher uses
    workdir = Path(workdir)
    config_path = render.render(workdir / "config", inbox_url, timings, config=config)
    return start_service(
        "alertmanager", workdir,
        lambda p: [ALERTMANAGER_BIN, f"--config.file={config_path}", f"--storage.path={workdir / 'data'}",
                   f"--web.listen-address={HOST}:{p}", "--cluster.listen-address=", f"--log.level={log_level}"],
        "/-/ready", port,
    )


def flushes_of(alertmanager: Service, name: str, fingerprint: str) -> int:
    """Return how often Alertmanager (started with log_level="debug") flushed the group holding an alert.

    The dispatcher logs `msg=flushing alerts=[<name>[<fingerprint[:7]>][active] ...]` before it runs
    a group through the notification pipeline (inhibition, silences, then the receivers), and runs
    one group's flushes one after the other: a second flush means the first one was done.
    """
    needle = f"{name}[{fingerprint[:7]}]"
    return sum(1 for line in alertmanager.log().splitlines() if "msg=flushing" in line and needle in line)


def write_targets(targets_dir, targets) -> None:
    """Write targets_dir/<job>.yml for every job: targets[job] (a list of host:port), else none."""
    targets_dir = Path(targets_dir)
    targets_dir.mkdir(parents=True, exist_ok=True)
    for job in set(PROMETHEUS_JOBS) | set(targets):
        addresses = targets.get(job, [])
        (targets_dir / f"{job}.yml").write_text(yaml.safe_dump([{"targets": list(addresses)}] if addresses else []))


def start_prometheus(workdir, *, config_dir=PROMETHEUS_DIR, rules_dir=None, targets=None, alertmanager=None,
                     scrape_interval=None, evaluation_interval=None, resend_delay=None, extra_args=(),
                     port=None) -> Service:
    """Start Prometheus with a copy of config_dir/prometheus.yml, rules_dir and file_sd targets.

    targets maps job -> [host:port]; unnamed jobs get no targets, except `prometheus` (itself)
    and `alertmanager` (the given Service or host:port). Intervals like "1s" override the global
    ones in the copy only. resend_delay (default 1m in Prometheus) bounds how long a firing alert
    waits to be re-sent, e.g. to an Alertmanager discovered a few seconds after the first send.
    """
    workdir = Path(workdir)
    config_dir = Path(config_dir)
    confdir = workdir / "config"
    shutil.rmtree(confdir, ignore_errors=True)
    shutil.copytree(Path(rules_dir or config_dir / "rules"), confdir / "rules")
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    for key, value in (("scrape_interval", scrape_interval), ("evaluation_interval", evaluation_interval)):
        if value:
            config["global"][key] = value
    if scrape_interval:
        config["global"]["scrape_timeout"] = scrape_interval  # the timeout may not exceed the interval
    (confdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(p):
        jobs = dict(targets or {})
        jobs.setdefault("prometheus", [f"{HOST}:{p}"])
        if alertmanager is not None:
            jobs.setdefault("alertmanager", [getattr(alertmanager, "address", alertmanager)])
        write_targets(confdir / "targets", jobs)
        return [PROMETHEUS_BIN, f"--config.file={confdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address={HOST}:{p}",
                "--web.enable-lifecycle", "--enable-feature=extra-scrape-metrics",  # scrape_timeout_seconds
                *([f"--rules.alert.resend-delay={resend_delay}"] if resend_delay else []), *extra_args]

    return start_service("prometheus", workdir, command, "/-/ready", port)
