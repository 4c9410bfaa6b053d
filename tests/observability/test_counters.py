"""Request counters equal the requests really sent, on WSGI and ASGI, across recycling and SIGKILL."""
import os
import signal

import pytest
import requests

from tests.support import stack, web

pytestmark = pytest.mark.integration

TIERS = [pytest.param(False, id="wsgi"), pytest.param(True, id="asgi")]


def _served(tier) -> float:
    return web.value(tier.scrape(), "django_http_responses_total_by_status_view_method_total", view="healthz")


def _send(tier, count: int) -> None:
    """`count` answered requests. A connection reset before any answer is sent again: uvicorn's worker,
    shutting down at max_requests, closes connections it accepted but has not read (no request reached
    Django, nothing was counted); a reset after Django counted one would show as one count too many."""
    with requests.Session() as session:
        for _ in range(count):
            for attempt in range(3):
                try:
                    response = session.get(f"{tier.url}/healthz", headers={"Connection": "close"}, timeout=10)
                    break
                except requests.ConnectionError:
                    if attempt == 2:
                        raise
            assert response.status_code == 200


@pytest.mark.parametrize("asgi", TIERS)
def test_counters_equal_requests_sent_across_max_requests_recycling(start_tier, asgi):
    tier = start_tier(asgi=asgi, workers=2, GUNICORN_MAX_REQUESTS="7", GUNICORN_MAX_REQUESTS_JITTER="0")
    before = _served(tier)  # the readiness probe's
    sent = 0
    while web.value(tier.scrape(), "gunicorn_worker_exits_total", reason="recycled") < 6:
        assert sent < 400, "workers were not recycled by max_requests"
        _send(tier, 10)
        sent += 10
    samples = tier.scrape()
    assert _served(tier) == before + sent
    assert web.value(samples, "gunicorn_worker_exits_total", reason="crash") == 0
    assert web.value(samples, "gunicorn_worker_exits_total", reason="signal") == 0
    assert web.value(samples, "gunicorn_workers") == 2


@pytest.mark.parametrize("asgi", TIERS)
def test_counters_never_go_back_after_a_worker_is_sigkilled(start_tier, asgi):
    tier = start_tier(asgi=asgi, workers=2)
    before = _served(tier)
    _send(tier, 25)
    stack.wait_for(lambda: _served(tier) == before + 25, 10, "25 requests counted")
    victim = min(tier.worker_pids())
    os.kill(victim, signal.SIGKILL)
    stack.wait_for(lambda: victim not in tier.worker_pids() and len(tier.worker_pids()) == 2, 30, "worker replaced")
    assert _served(tier) == before + 25  # the dead worker's count is kept, nothing counted twice
    _send(tier, 15)
    stack.wait_for(lambda: _served(tier) == before + 40, 10, "40 requests counted")
    samples = tier.scrape()
    assert web.value(samples, "gunicorn_worker_exits_total", reason="signal") == 1
    assert web.value(samples, "gunicorn_worker_timeouts_total") == 0
