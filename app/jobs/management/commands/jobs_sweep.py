"""Publish accepted jobs the broker did not take, recover lost messages, fail abandoned jobs.

With --loop it sweeps until SIGTERM/SIGINT. A sweep that raises (database or broker down) is
logged and counted (jobs_sweeper_errors_total), and the next one waits longer (doubling up to
--max-backoff); jobs_sweeper_last_success_timestamp_seconds is set after each sweep that
completed. Metrics go to PROMETHEUS_MULTIPROC_DIR (the Celery folder, served by the exporter).
"""
import logging
import signal
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections, connections

from app.jobs import metrics, services
from django_celery_ops import multiprocess

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep sweeping until stopped")
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between sweeps (default JOBS_ENQUEUE_RETRY_SECONDS)")
        parser.add_argument("--min-age", type=float, default=1.0,
                            help="leave jobs accepted less than this many seconds ago to their request")
        parser.add_argument("--max-backoff", type=float, default=60.0, help="longest wait after failed sweeps")

    def handle(self, *args, loop=False, interval=None, min_age=1.0, max_backoff=60.0, **options):
        from django.conf import settings

        multiprocess.setup("sweeper")
        interval = interval or settings.JOBS_ENQUEUE_RETRY_SECONDS
        gauges = metrics.sweeper()
        if not loop:
            self._sweep(min_age)
            gauges.last_success.set(time.time())
            return
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
        failures = 0
        while not stopping:
            try:
                close_old_connections()
                self._sweep(min_age)
            except Exception:
                failures += 1
                gauges.errors.inc()
                log.exception("sweep failed (%d in a row); retrying with backoff", failures)
                try:
                    connections.close_all()  # reconnect next time: the old connection may be broken
                except Exception:  # closing a broken connection can fail too
                    log.debug("closing the database connection failed", exc_info=True)
            else:
                failures = 0
                gauges.last_success.set(time.time())
            wait = interval if not failures else min(max_backoff, interval * 2 ** failures)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and not stopping:
                time.sleep(min(0.2, wait))

    @staticmethod
    def _sweep(min_age: float) -> None:
        stats = services.jobs_sweep(min_age)
        if any(value for key, value in stats.items()):
            log.info("sweep: %s", ", ".join(f"{key}={value}" for key, value in stats.items()))
