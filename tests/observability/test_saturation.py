"""While every worker sleeps in a slow view, the metrics endpoint answers and shows the saturation."""
import concurrent.futures

import pytest
import requests

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
    assert web.value(done, "django_http_requests_latency_seconds_by_view_method_bucket",
                     view="drills:slow-view", le="1.0") == 0  # the slow threshold is a bucket bound


def test_metrics_server_serves_only_metrics_on_loopback(start_tier):
    tier = start_tier(workers=1)
    assert tier.metrics_url.startswith("http://127.0.0.1:")
    base = tier.metrics_url.rsplit("/", 1)[0]
    assert requests.get(f"{base}/admin/", timeout=5).status_code == 404
    assert requests.get(f"{tier.url}/metrics", timeout=5).status_code == 404  # not in the public URL space
