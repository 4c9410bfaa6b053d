"""Send light, healthy background traffic to the local stack so every dashboard has data.

Loopback only, bounded by --duration (0 = until stopped) and --rate: a mix of probes, job
uploads, exports and status polls on both web tiers. Nothing here is slow or failing.
"""
import io
import json
import logging
import os
import random
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

log = logging.getLogger(__name__)
_LOOPBACK = ("127.", "localhost")


def api_token() -> str:
    """Return the local stack's API token: $OPS_API_TOKEN, else $OPS_VAR_DIR/api_token, else ''."""
    token = os.environ.get("OPS_API_TOKEN", "").strip()
    if token:
        return token
    try:
        return (Path(os.environ.get("OPS_VAR_DIR", "var")) / "api_token").read_text().strip()
    except OSError:
        return ""


_AUTH: dict = {}


def _request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=data, headers={**_AUTH, **(headers or {})},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


def _job_id(answer: tuple[int, bytes]) -> str | None:
    status, body = answer
    if status != 202:
        return None
    try:
        return str(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError):
        return None


def _csv_upload(url: str) -> tuple[int, bytes]:
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
        token = api_token()
        _AUTH.clear()
        if token:  # the API requires a token in production settings; healthy traffic sends it
            _AUTH["Authorization"] = f"Bearer {token}"
        jobs = deque(maxlen=50)  # (tier URL, job id) of recent uploads and exports, to poll
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
                if kind < 0.05 or (kind < 0.5 and not jobs):
                    job = _job_id(_csv_upload(url))
                    if job:
                        jobs.append((url, job))
                elif kind < 0.07:
                    job = _job_id(_request(f"{url}/api/exports/", b'{"report": "jobs"}',
                                           {"Content-Type": "application/json"}))
                    if job:
                        jobs.append((url, job))
                elif kind < 0.5:
                    tier, job = random.choice(jobs)
                    _request(f"{tier}/api/jobs/{job}/")  # a status poll of a job this traffic created
                else:
                    _request(f"{url}/healthz")  # not /readyz: probes of dependencies are not user traffic
            except (urllib.error.URLError, OSError) as exc:
                log.debug("traffic: %s unreachable (%s)", url, exc)
            sent += 1
            time.sleep(random.expovariate(rate))
        self.stdout.write(f"traffic: {sent} requests sent")
