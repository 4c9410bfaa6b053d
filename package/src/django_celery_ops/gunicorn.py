"""gunicorn server hooks: per-process metric storage, the tier's shape, worker exits by reason,
and the evidence of a worker timeout (which view, which URL, where it was stuck).

gunicorn.conf.py only wires these. The master never starts a thread here: it forks the
workers, and a fork from a threaded process can copy a lock held forever by a thread that
does not exist in the child. Everything that needs a thread (Sentry) starts in the worker.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import tempfile

from gunicorn import glogging

from . import evidence, listen, logsafe, multiprocess, tier

log = logging.getLogger("gunicorn.error")

_STATE_ENV = "OBS_GUNICORN_STATE_DIR"
_master: dict = {"lock_fd": None}


class _EscapedAtoms(glogging.SafeAtoms):
    def __init__(self, atoms):
        super().__init__({k: logsafe.escape(v) if isinstance(v, str) else v for k, v in atoms.items()})


class Logger(glogging.Logger):
    """gunicorn's logger whose access-log fields (request line, headers) are escaped (logsafe)."""

    atoms_wrapper_class = _EscapedAtoms


def _state_dir() -> str | None:
    return os.environ.get(_STATE_ENV)


def _reports_dir() -> str:
    return os.path.join(_state_dir(), "timeouts")


def _capacity(server) -> int:
    from gunicorn.workers.gthread import ThreadWorker
    from gunicorn.workers.sync import SyncWorker

    if issubclass(server.worker_class, ThreadWorker):
        per_worker = server.cfg.threads
    elif issubclass(server.worker_class, SyncWorker):
        per_worker = 1
    else:  # async workers (uvicorn, gevent): as many as the worker takes at once
        per_worker = server.cfg.worker_connections
    return server.num_workers * per_worker


def _write_tier(server) -> None:
    directory = multiprocess.directory()
    if not directory or _master["lock_fd"] is None:
        return
    listeners = []
    for lnr in server.LISTENERS:
        sock = getattr(lnr, "sock", None)
        if sock is not None and sock.family in (2, 10):  # AF_INET, AF_INET6: the ones /proc/net/tcp shows
            listeners.append({"address": str(lnr), "inode": listen.socket_inode(sock)})
    tier.write(directory, {
        "pid": os.getpid(), "name": server.proc_name, "worker_class": server.cfg.worker_class_str,
        "workers": server.num_workers, "capacity": _capacity(server), "listeners": listeners,
        "backlog_limit": listen.backlog_limit(server.cfg.backlog),
    })


def on_starting(server) -> None:
    """Master: claim the master's metric slot and the tier lock; make the evidence folder."""
    directory = multiprocess.directory()
    if not directory and server.num_workers > 1:
        log.warning("PROMETHEUS_MULTIPROC_DIR is not set: each of the %d workers keeps its own counters and "
                    "no metrics server sees them (django_celery_ops.W001)", server.num_workers)
    state = os.path.join(directory, "gunicorn") if directory else tempfile.mkdtemp(prefix="gunicorn-evidence-")
    os.makedirs(os.path.join(state, "timeouts"), exist_ok=True)
    for name in os.listdir(state):  # evidence of workers of a master that died without reaping them
        if name.startswith(("requests-", "stack-")):
            os.unlink(os.path.join(state, name))
    os.environ[_STATE_ENV] = state
    if directory:
        multiprocess.setup("master")
        _master["lock_fd"] = tier.hold_lock(directory)


def when_ready(server) -> None:
    _write_tier(server)


def nworkers_changed(server, new_value, old_value) -> None:
    if old_value is not None:  # None: the first call, before on_starting
        _write_tier(server)


def on_exit(server) -> None:
    if _master["lock_fd"] is not None:
        os.close(_master["lock_fd"])
        _master["lock_fd"] = None


def post_fork(server, worker) -> None:
    """Worker, first thing after the fork: its own metric slot, then Sentry and the slow-request watchdog."""
    if _master["lock_fd"] is not None:
        os.close(_master["lock_fd"])  # our copy would keep the tier "running" after the master died
        _master["lock_fd"] = None
    multiprocess.setup("worker")
    from . import sentry, slowstack

    sentry.init()
    slowstack.start()  # the stacks of slow requests while they still run (a thread of this worker)


def post_worker_init(worker) -> None:
    """Worker, app loaded and signal handlers set: arm the evidence, send pending timeout reports."""
    evidence.arm(_state_dir())
    from . import metrics, sentry

    try:
        metrics.export_migrations()
    except Exception:  # a database that is down must not keep the worker from serving
        log.warning("could not read the migration state", exc_info=True)

    sentry.report_timeouts(_reports_dir())


def worker_exit(server, worker) -> None:
    """Worker, on its way out in Python: leave the exit code and whether max_requests was reached."""
    exc = sys.exc_info()[1]
    code = exc.code if isinstance(exc, SystemExit) else (1 if exc else 0)
    code = 0 if code is None else code if isinstance(code, int) else 1
    try:
        served = max(getattr(worker, "nr", 0), evidence.served())
        evidence.note_exit(code, recycled=served >= worker.max_requests)
    except Exception:  # the worker exits anyway; the master then reads no exit ("signal")
        _instrumentation_failed()


def exit_reason(aborted: bool, exit_info: dict | None, stopping: bool) -> str:
    """Classify a worker's end: timeout, recycled, crash, shutdown or signal."""
    if aborted:
        return "timeout"
    if exit_info is None:  # it ran no Python on the way out: SIGKILL (OOM killer), SIGSEGV, ...
        return "shutdown" if stopping else "signal"
    if exit_info.get("code"):
        return "crash"
    if exit_info.get("recycled"):
        return "recycled"
    return "shutdown"


def _instrumentation_failed() -> None:
    """Count the exception being handled in django_instrumentation_errors_total{stage="evidence"}."""
    try:
        from .middleware import instrumentation_failed

        instrumentation_failed("evidence")
    except Exception:  # nor may counting it break the arbiter
        log.warning("evidence hook failed", exc_info=True)


def child_exit(server, worker) -> None:
    """Master, after reaping a worker: count its exit by reason; log and report a timeout.

    Whatever the worker left behind (a torn record, a foreign file) or a failure here is counted
    as an instrumentation error: it must never raise into gunicorn's arbiter.
    """
    try:
        from . import metrics

        record, stack = evidence.collect(_state_dir(), worker.pid)
        reason = exit_reason(worker.aborted, record.get("exit"), stopping=not server.LISTENERS)
        metrics.worker_exits.labels(reason).inc()
        if reason == "timeout":
            metrics.worker_timeouts.inc()
            _report_timeout(server, worker, record, stack)
    except Exception:
        _instrumentation_failed()


def _sentry_configured() -> bool:
    """A DSN in the environment or in DJANGO_CELERY_OPS["SENTRY"] (read only when Django's settings can be)."""
    if os.environ.get("SENTRY_DSN"):
        return True
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return False
    try:
        from . import conf

        return bool(conf.get("SENTRY")["DSN"])
    except Exception:  # the master must never die of a settings problem while reaping a worker
        log.warning("could not read the Sentry settings", exc_info=True)
        return False


def _report_timeout(server, worker, record: dict, stack: str) -> None:
    import time

    requests = record.get("requests") or [{}]
    current = requests[0]  # the oldest request in flight: the one that kept the worker
    report = {
        "pid": worker.pid, "timeout_seconds": server.timeout, "view": current.get("view"),
        "method": current.get("method"), "path": current.get("path"), "request_id": current.get("request_id"),
        "running_seconds": round(time.time() - current["started"], 3) if current.get("started") else None,
        "in_flight": record.get("in_flight", 0), "stack": stack.strip() or "(no stack dump: the worker died first)",
    }
    fields = " ".join(f"{k}={logsafe.logfmt(report[k])}" for k in ("view", "method", "path", "request_id"))
    log.error(  # the stack (our own text) follows on lines of its own; request fields are escaped
        "worker timeout: pid=%s %s running_seconds=%s in_flight=%s\nstack of the stuck worker:\n%s",
        worker.pid, fields, report["running_seconds"], report["in_flight"], report["stack"],
        extra={"worker_timeout": {k: v for k, v in report.items() if k != "stack"}},
    )
    if _sentry_configured():  # a fresh worker sends it: the master has no Sentry SDK
        path = os.path.join(_reports_dir(), f"{worker.pid}.json")
        with open(path + ".tmp", "w") as f:
            json.dump(report, f)
        os.replace(path + ".tmp", path)


__all__ = ["Logger", "child_exit", "exit_reason", "nworkers_changed", "on_exit", "on_starting", "post_fork", "post_worker_init", "when_ready", "worker_exit"]
