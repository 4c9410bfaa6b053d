"""A sync call inside an async view blocks the ASGI event loop: the lag shows, and so does the culprit."""
import pytest
import requests

from tests.support import stack, web

pytestmark = pytest.mark.integration


def _lag_over(samples, bound: str) -> float:
    return (web.value(samples, "django_asgi_event_loop_lag_seconds_count")
            - web.value(samples, "django_asgi_event_loop_lag_seconds_bucket", le=bound))


def test_blocking_call_in_async_view_raises_loop_lag_and_logs_its_stack(start_tier):
    tier = start_tier(asgi=True, workers=1, OBS_LOOP_LAG_LOG_SECONDS="0.3")
    stack.wait_for(lambda: web.value(tier.scrape(), "django_asgi_event_loop_lag_seconds_count") > 5, 10,
                   "the lag monitor ticks")
    assert _lag_over(tier.scrape(), "0.5") == 0

    assert requests.get(f"{tier.url}/drills/nonblocking-async/?seconds=1.5", timeout=10).ok
    assert _lag_over(tier.scrape(), "0.5") == 0  # awaiting leaves the loop free

    assert requests.get(f"{tier.url}/drills/blocking-async/?seconds=1.5", timeout=10).ok
    stack.wait_for(lambda: _lag_over(tier.scrape(), "1.0") >= 1, 5, "a lag over 1 s observed")
    log = stack.wait_for(lambda: "event loop blocked" in tier.gunicorn.log() and tier.gunicorn.log(), 5, "stack logged")
    blocked = log[log.index("event loop blocked"):]
    assert "in blocking_async" in blocked and "time.sleep(seconds)" in blocked
