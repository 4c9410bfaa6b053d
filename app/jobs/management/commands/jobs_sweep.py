"""Enqueue accepted jobs the broker did not take, and fail jobs abandoned by killed workers."""
import logging
import signal
import time

from django.core.management.base import BaseCommand

from app.jobs import services

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="keep sweeping until stopped")
        parser.add_argument("--interval", type=float, default=None,
                            help="seconds between sweeps (default JOBS_ENQUEUE_RETRY_SECONDS)")

    def handle(self, *args, loop=False, interval=None, **options):
        from django.conf import settings

        interval = interval or settings.JOBS_ENQUEUE_RETRY_SECONDS
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        while True:
            sent, pending = services.jobs_enqueue_pending()
            abandoned = services.jobs_fail_abandoned()
            if sent or pending or abandoned or not loop:
                log.info("sweep: %d enqueued, %d still pending, %d abandoned failed", sent, pending, abandoned)
            if not loop or stopping:
                return
            deadline = time.monotonic() + interval
            while time.monotonic() < deadline and not stopping:
                time.sleep(0.2)
            if stopping:
                return
