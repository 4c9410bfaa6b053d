"""The Celery exporter service: `django-celery-ops-exporter --app proj.celery:app` (settings: docs/celery-observability.md).

/metrics serves three things: the task counters and histograms the workers and producers
wrote to the multiprocess directory (celery_metrics.py), the queue lengths this process
measures on the broker on a timer (celery_queues.py), and worker state from heartbeats
(celery_workers.py). The cluster-level gauges (queues and workers: the same seen from any
exporter) come from one exporter only, the holder of a lease in the broker (celery_queues.Lease,
EXPORTER_CLUSTER_METRICS), so sum() over several exporters counts them once. /health answers
200, or 503 with the reason while the broker cannot be reached. Broker errors never stop the
process: it logs them, reports celery_exporter_broker_up 0 and retries, so a Redis restart is
a gap, not a crash loop.
"""
from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer

from celery.events.receiver import EventReceiver
from prometheus_client.core import GaugeMetricFamily

from .env import env_float, env_int, env_list, env_str
from . import cardinality, celery_queues, exposition
from .celery_workers import WorkerTracker, host
from .slotreader import SlotReader

log = logging.getLogger("django_celery_ops.exporter")


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 9808
    poll_seconds: float = 5.0
    worker_timeout_seconds: float = 10.0
    worker_forget_seconds: float = 3600.0
    max_task_names: int = cardinality.DEFAULT_MAX_TASK_NAMES  # 0: no cap
    extra_queues: list[str] = field(default_factory=list)
    metrics_dir: str | None = None
    cluster_metrics: str = "lease"  # lease | always | never
    lease_seconds: float = 15.0
    lease_key: str = ""  # "": django_celery_ops.exporter.cluster.<the Celery app's main name>

    @classmethod
    def from_env(cls) -> Config:
        return cls(
            host=env_str("EXPORTER_HOST") or env_str("OPS_HOST") or "127.0.0.1",
            port=env_int("EXPORTER_PORT", 9808, minimum=0),
            poll_seconds=env_float("EXPORTER_POLL_SECONDS", 5.0, minimum=0.1),
            worker_timeout_seconds=env_float("EXPORTER_WORKER_TIMEOUT_SECONDS", 10.0, minimum=1.0),
            worker_forget_seconds=env_float("EXPORTER_WORKER_FORGET_SECONDS", 3600.0, minimum=0),
            max_task_names=env_int("EXPORTER_MAX_TASK_NAMES", cardinality.DEFAULT_MAX_TASK_NAMES, minimum=0),
            extra_queues=env_list("EXPORTER_QUEUES", []),
            # The workers' multiprocess folder; EXPORTER_METRICS_DIR keeps the exporter itself out of it.
            metrics_dir=env_str("EXPORTER_METRICS_DIR") or env_str("PROMETHEUS_MULTIPROC_DIR") or None,
            cluster_metrics=_choice("EXPORTER_CLUSTER_METRICS", "lease", CLUSTER_MODES),
            lease_seconds=env_float("EXPORTER_LEASE_SECONDS", 15.0, minimum=1.0),
            lease_key=env_str("EXPORTER_LEASE_KEY") or "",
        )


CLUSTER_MODES = ("lease", "always", "never")


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = (env_str(name) or default).strip().lower()
    if value not in choices:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def app_queues(celery_app) -> list[str]:
    """The queues named in the Celery configuration (task_queues and the default queue)."""
    names = [q.name for q in (celery_app.conf.task_queues or [])]
    return list(dict.fromkeys([*names, celery_app.conf.task_default_queue]))


class _Receiver(EventReceiver):
    def __init__(self, *args, on_ready, **kwargs):
        super().__init__(*args, **kwargs)
        self._on_ready = on_ready

    def on_consume_ready(self, connection, channel, consumers, **kwargs):
        self._on_ready()
        super().on_consume_ready(connection, channel, consumers, **kwargs)  # asks workers to beat now


class Exporter:
    """Polls the broker, follows worker events, and renders the metrics."""

    def __init__(self, celery_app, config: Config):
        self.app, self.config = celery_app, config
        self.queues = list(dict.fromkeys([*app_queues(celery_app), *config.extra_queues]))
        self.workers = WorkerTracker(config.worker_timeout_seconds)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._queue_stats: dict[str, celery_queues.QueueStats] = {}
        self._broker_error: str | None = "no broker poll yet"
        token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        # One lease per Celery app: two projects sharing one Redis database each keep their own.
        config.lease_key = config.lease_key or f"django_celery_ops.exporter.cluster.{celery_app.main or 'celery'}"
        self.lease = celery_queues.Lease(config.lease_key, config.lease_seconds, token, time.monotonic)
        if config.cluster_metrics == "lease" and config.lease_seconds < 2 * config.poll_seconds:
            log.warning("EXPORTER_LEASE_SECONDS=%s is under 2 x EXPORTER_POLL_SECONDS=%s: the lease it renews "
                        "every poll will lapse between polls", config.lease_seconds, config.poll_seconds)
        # Task names capped, the series of gone workers' hostnames forgotten (docs/scaling.md).
        self.policy = cardinality.exporter_policy(self.workers, config.worker_forget_seconds, config.max_task_names)
        # /metrics serves these in order: the workers' slot files (read incrementally; a dead process's
        # live gauges leave), the policy's counters, this process's own gauges.
        self.collectors: list = [self.policy, self]
        self.reader = None
        if config.metrics_dir:
            os.makedirs(config.metrics_dir, exist_ok=True)  # the exporter may start before any worker
            self.reader = SlotReader(config.metrics_dir, series_filter=self.policy)
            self.collectors.insert(0, self.reader)

    # --- broker polling ---------------------------------------------------------------------
    def poll_once(self, connection) -> None:
        connection.ensure_connection(max_retries=1)
        stats = celery_queues.measure(connection, self.queues)
        with self._lock:
            if self._broker_error:
                log.info("broker %s reachable; measuring queues %s", connection.as_uri(), ", ".join(self.queues))
            self._queue_stats, self._broker_error = stats, None
        if self.config.cluster_metrics == "lease":
            was = self.lease.held()
            now = self.lease.renew(connection)  # on a broker error the lease runs out by itself
            if now != was:
                log.info("%s the cluster lease %s: %s the cluster-level gauges", "took" if now else "lost",
                         self.config.lease_key, "reporting" if now else "not reporting")

    def reports_cluster(self) -> bool:
        """True when this exporter reports the cluster-level gauges (EXPORTER_CLUSTER_METRICS)."""
        mode = self.config.cluster_metrics
        return mode == "always" or (mode == "lease" and self.lease.held())

    def _poll_loop(self) -> None:
        connection, last_logged = None, (None, 0.0)
        while not self._stop.is_set():
            try:
                connection = connection or self.app.connection_for_read()
                self.poll_once(connection)
            except Exception as exc:  # noqa: BLE001 - any broker failure is reported, never fatal
                reason = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    self._broker_error = reason
                if reason != last_logged[0] or time.monotonic() - last_logged[1] > 60:
                    where = connection.as_uri() if connection is not None else "(unusable broker URL)"
                    log.error("broker %s unreachable, retrying every %.1f s: %s", where,
                              self.config.poll_seconds, reason)
                    last_logged = (reason, time.monotonic())
                if connection is not None:
                    connection.collect()  # drop the broken sockets; the next poll reconnects
                    connection = None
            self._stop.wait(self.config.poll_seconds)
        try:
            self.lease.release(connection)
        except Exception as exc:  # noqa: BLE001 - the key expires by itself
            log.warning("could not release the cluster lease (%s: %s)", type(exc).__name__, exc)

    # --- worker events ------------------------------------------------------------------------
    def _event_loop(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                with self.app.connection_for_read() as connection:
                    receiver = _Receiver(connection, handlers=self.workers.handlers(), routing_key="worker.#",
                                         app=self.app, on_ready=lambda: self.workers.listening(True))
                    delay = 1.0
                    receiver.capture(limit=None, timeout=None, wakeup=True)
            except Exception as exc:  # noqa: BLE001
                log.warning("worker event stream lost (%s: %s); reconnecting in %.0f s",
                            type(exc).__name__, exc, delay)
            self.workers.listening(False)
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)

    # --- rendering ---------------------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        with self._lock:
            error = self._broker_error
        return (False, f"broker unreachable: {error}") if error else (True, "ok")

    def collect(self):
        with self._lock:
            stats, broker_up = dict(self._queue_stats), self._broker_error is None
        workers = self.workers.snapshot()
        self.workers.forget(self.config.worker_forget_seconds)
        leader = self.reports_cluster()
        if leader:
            yield from self._cluster_gauges(stats, workers)
        role = GaugeMetricFamily("celery_exporter_cluster_metrics",
                                 "1 when this exporter reports the cluster-level gauges (queues, workers).")
        role.add_metric([], 1 if leader else 0)
        yield role
        broker = GaugeMetricFamily("celery_exporter_broker_up", "1 when the last broker poll succeeded.")
        broker.add_metric([], 1 if broker_up else 0)
        yield broker

    def _cluster_gauges(self, stats, workers):
        gauges = {name: GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in [
            ("celery_queue_length", "Messages waiting in the broker queue (all priorities).", ["queue_name"]),
            ("celery_active_consumer_count", "Consumers of the queue.", ["queue_name"]),
            ("celery_active_worker_count", "Live workers consuming the queue.", ["queue_name"]),
            ("celery_active_process_count", "Pool processes of the live workers consuming the queue.",
             ["queue_name"]),
            ("celery_worker_up", "1 while a worker of the host sends heartbeats.", ["hostname"]),
            ("celery_worker_tasks_active", "Tasks the host's workers are running now.", ["hostname"]),
            ("celery_worker_concurrency", "Pool size of the host's live workers.", ["hostname"]),
        ]}
        for queue in self.queues:
            live = [w for w in workers.values() if w.up and queue in w.queues]
            worker_count = len(live)
            consumers = stats[queue].consumers if queue in stats else None
            if queue in stats:
                gauges["celery_queue_length"].add_metric([queue], stats[queue].length)
            gauges["celery_active_consumer_count"].add_metric([queue], worker_count if consumers is None
                                                              else consumers)
            gauges["celery_active_worker_count"].add_metric([queue], worker_count)
            gauges["celery_active_process_count"].add_metric([queue], sum(w.concurrency or 0 for w in live))
        # celery-exporter's hostname is the host part of the node name: the nodes of one host share a
        # series (up if any of them is, their active tasks and pools added up).
        hosts: dict[str, list] = {}
        for nodename, worker in workers.items():
            hosts.setdefault(host(nodename), []).append(worker)
        for hostname, nodes in sorted(hosts.items()):
            live = [w for w in nodes if w.up]
            gauges["celery_worker_up"].add_metric([hostname], 1 if live else 0)
            gauges["celery_worker_tasks_active"].add_metric([hostname], sum(w.active for w in live))
            if any(w.concurrency is not None for w in live):
                gauges["celery_worker_concurrency"].add_metric([hostname], sum(w.concurrency or 0 for w in live))
        yield from gauges.values()

    # --- process ------------------------------------------------------------------------------
    def start(self) -> ThreadingHTTPServer:
        server = ThreadingHTTPServer((self.config.host, self.config.port), _handler(self))
        server.daemon_threads = True
        if self.reader:
            self.reader.warm()  # index the workers' files before the first scrape asks
        self._threads = [threading.Thread(target=target, name=name, daemon=True) for target, name in [
            (self._poll_loop, "broker-poll"), (self._event_loop, "worker-events"), (server.serve_forever, "http")]]
        for thread in self._threads:
            thread.start()
        address, port = server.server_address[:2]
        log.info("celery exporter on http://%s:%s/metrics (queues %s, worker timeout %.0f s)", address, port,
                 ", ".join(self.queues), self.config.worker_timeout_seconds)
        return server

    def stop(self, server: ThreadingHTTPServer) -> None:
        self._stop.set()
        server.shutdown()
        server.server_close()
        self._threads[0].join(5)  # the poll loop releases the lease on its way out


def _handler(exporter: Exporter):
    return exposition.make_handler(lambda: exporter.collectors, health=exporter.health)


def load_app(spec: str):
    """Import a Celery app named as `celery -A` takes it: "module:attr", or "module" (its `app`/`celery`)."""
    import importlib

    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    if attr:
        return getattr(module, attr)
    for name in ("app", "celery"):
        if hasattr(module, name):
            return getattr(module, name)
    raise SystemExit(f"--app {spec}: module {module_name} has no attribute app or celery; use module:attr")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="django-celery-ops-exporter", description=__doc__.split("\n")[0])
    parser.add_argument("-A", "--app", default=os.environ.get("CELERY_APP"),
                        help="the Celery app, module:attr as `celery -A` takes it (default: $CELERY_APP)")
    args = parser.parse_args(argv)
    if not args.app:
        parser.error("--app is required (or set CELERY_APP), e.g. --app proj.celery:app")
    logging.basicConfig(level=os.environ.get("EXPORTER_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    import sys

    sys.path.insert(0, os.getcwd())  # as the celery command does: the project's modules from the working dir
    celery_app = load_app(args.app)

    exporter = Exporter(celery_app, Config.from_env())
    server = exporter.start()
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    log.info("stopping")
    exporter.stop(server)


__all__ = ["Config", "Exporter", "app_queues", "load_app", "main"]

if __name__ == "__main__":
    main()
