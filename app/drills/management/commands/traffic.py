"""Send light, healthy background traffic to the local stack so every dashboard has data.

Loopback only, bounded by --duration (0 = until stopped) and --rate: a mix of probes, job
uploads, exports and status polls on both web tiers. Nothing here is slow or failing.
"""
import io
import logging
import random
import signal
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

log = logging.getLogger(__name__)
_LOOPBACK = ("127.", "localhost")


def _request(url: str, data: bytes | None = None, headers: dict | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _csv_upload(url: str) -> int:
    rows = "\n".join(f"{i},{random.random():.4f},name{i % 7}" for i in range(random.randint(5, 200)))
    body_csv = f"id,value,label\n{rows}\n".encode()
    boundary = uuid.uuid4().hex
    body = io.BytesIO()
    body.write(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.csv\"\r\n"
               "Content-Type: text/csv\r\n\r\n".encode())
    body.write(body_csv)
    body.write(f"\r\n--{boundary}--\r\n".encode())
    return _request(f"{url}/api/imports/", body.getvalue(), {"Content-Type": f"multipart/form-data; boundary={boundary}"})


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--url", action="append", dest="urls", required=True,
                            help="base URL of a web tier (repeat for several); loopback only")
        parser.add_argument("--rate", type=float, default=2.0, help="requests per second, all kinds (default 2; 0 sends nothing)")
        parser.add_argument("--duration", type=float, default=0, help="seconds to run; 0 runs until stopped")

    def handle(self, *args, urls, rate, duration, **options):
        for url in urls:
            host = urlsplit(url).hostname or ""
            if not host.startswith(_LOOPBACK):
                raise CommandError(f"--url {url}: traffic goes to loopback addresses only")
        if rate < 0:
            raise CommandError("--rate must not be negative")
        stopping = []
        signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
        deadline = time.monotonic() + duration if duration else None
        sent = 0
        while rate == 0 and not stopping and (deadline is None or time.monotonic() < deadline):
            time.sleep(0.5)  # off, but alive: the process manager stops the stack when a process exits
        while rate and not stopping and (deadline is None or time.monotonic() < deadline):
            url = random.choice(urls)
            kind = random.random()
            try:
                if kind < 0.05:
                    _csv_upload(url)
                elif kind < 0.07:
                    _request(f"{url}/api/exports/", b"{}", {"Content-Type": "application/json"})
                elif kind < 0.5:
                    _request(f"{url}/api/jobs/{uuid.uuid4()}/")  # a poll for a job that does not exist: 404
                else:
                    _request(f"{url}/healthz")  # not /readyz: probes of dependencies are not user traffic
            except (urllib.error.URLError, OSError) as exc:
                log.debug("traffic: %s unreachable (%s)", url, exc)
            sent += 1
            time.sleep(random.expovariate(rate))
        self.stdout.write(f"traffic: {sent} requests sent")
