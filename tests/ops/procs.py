"""Start Prometheus, Alertmanager and the notification inbox for tests, on free loopback ports.

Each start_* function returns a running Service (url, process, workdir, log); stop it with
service.stop() or use it as a context manager. Services still running when the interpreter exits
are stopped by an atexit hook, so a failing test never leaves a server behind. Everything binds
127.0.0.1 only. Import it as tests.ops.procs. Reused by the integration tests that run the real rules against the live app:

    with start_inbox(tmp / "inbox") as inbox, \\
         start_alertmanager(tmp / "am", inbox.url, timings={"group_wait": "1s"}) as am, \\
         start_prometheus(tmp / "prom", rules_dir=compressed, targets={"django-wsgi": ["127.0.0.1:9100"]},
                          alertmanager=am, scrape_interval="1s") as prom:
        ...
"""

import atexit
import importlib.util
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO / "ops" / "prometheus"
ALERTMANAGER_DIR = REPO / "ops" / "alertmanager"
INBOX_SCRIPT = REPO / "ops" / "inbox" / "inbox.py"
PROMETHEUS_JOBS = ("django-wsgi", "django-asgi", "celery-exporter", "redis", "prometheus", "alertmanager")

PROMETHEUS_BIN = shutil.which("prometheus") or "/usr/bin/prometheus"
ALERTMANAGER_BIN = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager") or "alertmanager"
STARTUP_TIMEOUT_SECONDS = 30

_running = []


@dataclass
class Service:
    """A server process started by this module."""

    name: str
    url: str
    process: subprocess.Popen
    workdir: Path
    log: Path

    @property
    def address(self):
        """Return host:port, as a Prometheus target."""
        return self.url.split("://", 1)[1].rstrip("/")

    def stop(self):
        """Stop the process: SIGTERM, then SIGKILL after 10 seconds."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self in _running:
            _running.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


@atexit.register
def _stop_all():
    for service in _running:
        service.stop()


def load_module(path):
    """Import a script of ops/ (not a package) by its path."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(f"ops_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port():
    """Return a TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(name, workdir, command_for_port, ready_path, port=None):
    """Start command_for_port(port) and wait until GET ready_path answers 200; retry on a port race."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    for _attempt in range(1 if port else 3):
        chosen = port or free_port()
        url = f"http://127.0.0.1:{chosen}"
        with log.open("ab") as out:
            process = subprocess.Popen(command_for_port(chosen), stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=workdir, start_new_session=True)
        service = Service(name, url, process, workdir, log)
        _running.append(service)
        if _wait_ready(service, ready_path):
            return service
        service.stop()
    tail = log.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"{name} did not become ready; log {log}:\n{tail}")


def _wait_ready(service, path):
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(service.url + path, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    return False


def start_inbox(workdir, port=None):
    """Start ops/inbox/inbox.py recording into workdir; return the Service."""
    workdir = Path(workdir)
    return _start(
        "inbox", workdir,
        lambda p: [sys.executable, str(INBOX_SCRIPT), "--host", "127.0.0.1", "--port", str(p),
                   "--dir", str(workdir)],
        "/healthz", port,
    )


def start_alertmanager(workdir, inbox_url, timings=None, port=None, config=ALERTMANAGER_DIR / "alertmanager.yml",
                       log_level="info"):
    """Render the real Alertmanager config to notify inbox_url and start Alertmanager on it.

    timings: e.g. {"group_wait": "1s", "group_interval": "1s"}, applied to every route.
    log_level "debug" logs every flush of an aggregation group (see flushes_of()).
    """
    render = load_module(ALERTMANAGER_DIR / "render.py")  # the renderer the stack launcher uses
    workdir = Path(workdir)
    config_path = render.render(workdir / "config", inbox_url, timings, config=config)
    return _start(
        "alertmanager", workdir,
        lambda p: [ALERTMANAGER_BIN, f"--config.file={config_path}", f"--storage.path={workdir / 'data'}",
                   f"--web.listen-address=127.0.0.1:{p}", "--cluster.listen-address=", f"--log.level={log_level}"],
        "/-/ready", port,
    )


def flushes_of(alertmanager, name, fingerprint):
    """Return how often Alertmanager (started with log_level="debug") flushed the group holding an alert.

    The dispatcher logs `msg=flushing alerts=[<name>[<fingerprint[:7]>][active] ...]` before it runs
    a group through the notification pipeline (inhibition, silences, then the receivers), and runs
    one group's flushes one after the other: a second flush means the first one was done.
    """
    needle = f"{name}[{fingerprint[:7]}]"
    lines = alertmanager.log.read_text(errors="replace").splitlines()
    return sum(1 for line in lines if "msg=flushing" in line and needle in line)


def write_targets(targets_dir, targets):
    """Write targets_dir/<job>.yml for every job: targets[job] (a list of host:port), else none."""
    targets_dir = Path(targets_dir)
    targets_dir.mkdir(parents=True, exist_ok=True)
    for job in set(PROMETHEUS_JOBS) | set(targets):
        addresses = targets.get(job, [])
        (targets_dir / f"{job}.yml").write_text(yaml.safe_dump([{"targets": list(addresses)}] if addresses else []))


def start_prometheus(workdir, *, config_dir=PROMETHEUS_DIR, rules_dir=None, targets=None, alertmanager=None,
                     scrape_interval=None, evaluation_interval=None, resend_delay=None, extra_args=(), port=None):
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
        # the timeout may not exceed the interval
        config["global"]["scrape_timeout"] = scrape_interval
    (confdir / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(p):
        jobs = dict(targets or {})
        jobs.setdefault("prometheus", [f"127.0.0.1:{p}"])
        if alertmanager is not None:
            jobs.setdefault("alertmanager", [getattr(alertmanager, "address", alertmanager)])
        write_targets(confdir / "targets", jobs)
        return [PROMETHEUS_BIN, f"--config.file={confdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{p}",
                "--web.enable-lifecycle",
                *([f"--rules.alert.resend-delay={resend_delay}"] if resend_delay else []), *extra_args]

    return _start("prometheus", workdir, command, "/-/ready", port)
