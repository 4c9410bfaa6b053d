"""While every worker sleeps in a slow view, the metrics endpoint answers and shows the saturation."""
import concurrent.futures
import os
import socket

import pytest
import requests
from django.conf import settings
from prometheus_client.utils import floatToGoString

from tests.support import stack, web

pytestmark = pytest.mark.integration


def test_metrics_answer_while_all_workers_are_busy_and_show_in_flight_and_backlog(start_tier):
    tier = start_tier(workers=2, GUNICORN_TIMEOUT="60")
    idle = tier.scrape()
    assert web.value(idle, "gunicorn_requests_in_flight") == 0
    assert web.value(idle, "gunicorn_listen_backlog") == 0
    assert web.value(idle, "gunicorn_workers_capacity") == 2
    assert web.value(idle, "gunicorn_listen_backlog_limit") > 0

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        slow = [pool.submit(requests.get, f"{tier.url}/drills/slow-view/?seconds=6", timeout=30) for _ in range(2)]
        stack.wait_for(lambda: web.value(tier.scrape(), "gunicorn_requests_in_flight") == 2, 5, "both workers busy")
        waiting = web.open_idle_connections(tier.url, 3)
        try:
            busy = tier.scrape(timeout=2)  # answered by the metrics server, not a (busy) worker
            assert web.value(busy, "gunicorn_requests_in_flight") == 2
            assert web.value(busy, "gunicorn_listen_backlog") == 3
            assert all(f.result().status_code == 200 for f in slow)
            stack.wait_for(lambda: web.value(tier.scrape(), "gunicorn_listen_backlog") == 0, 10, "backlog drained")
            stack.wait_for(lambda: web.value(tier.scrape(), "gunicorn_requests_in_flight") == 0, 10, "workers idle")
        finally:
            for sock in waiting:
                sock.close()
    done = tier.scrape()
    assert web.value(done, "django_http_slow_requests_total", view="drills:slow-view", method="GET") == 2
    # the slow threshold is a bucket bound: its bucket exists, holds neither slow request, and the next holds both
    slow_le = floatToGoString(settings.DJANGO_CELERY_OPS["SLOW_REQUEST_SECONDS"])
    buckets = {dict(labels)["le"]: v for (name, labels), v in done.items()
               if name == "django_http_requests_latency_seconds_by_view_method_bucket"
               and ("view", "drills:slow-view") in labels}
    assert buckets[slow_le] == 0 and buckets["+Inf"] == 2 and buckets["10.0"] == 2


def _listening(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket the process listens on, read from the kernel."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        with open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[9]) in inodes:  # LISTEN
                    raw, port = fields[1].split(":")
                    address = bytes.fromhex(raw)
                    # /proc prints each 32-bit word of the address in host (little-endian) order
                    address = b"".join(address[i:i + 4][::-1] for i in range(0, len(address), 4))
                    found.add((socket.inet_ntop(family, address), int(port, 16)))
    return found


def test_metrics_server_serves_only_metrics_on_loopback(start_tier):
    tier = start_tier(workers=1)  # the metrics server runs with its default host (no --host)
    port = int(tier.metrics_url.rsplit(":", 1)[1].split("/")[0])
    assert _listening(tier.metrics_server.pid) == {("127.0.0.1", port)}  # what the kernel says it bound
    base = tier.metrics_url.rsplit("/", 1)[0]
    assert requests.get(f"{base}/admin/", timeout=5).status_code == 404
    assert requests.get(f"{tier.url}/metrics", timeout=5).status_code == 404  # not in the public URL space
