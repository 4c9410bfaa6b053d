"""A request past the gunicorn timeout is counted and leaves its view, URL and stack in the log."""
import pytest
import requests

from tests.support import stack, web

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("asgi", [pytest.param(False, id="wsgi"), pytest.param(True, id="asgi")])
def test_worker_timeout_is_counted_and_logs_view_url_and_stack(start_tier, asgi):
    tier = start_tier(asgi=asgi, workers=1, GUNICORN_TIMEOUT="2")
    drill = "/drills/blocking-async/" if asgi else "/drills/worker-timeout/"
    with pytest.raises(requests.RequestException):  # the worker dies mid-request: no (complete) answer
        response = requests.get(f"{tier.url}{drill}?seconds=30", headers={"X-Request-ID": "drill-timeout-1"},
                                timeout=20)
        response.raise_for_status()
    stack.wait_for(lambda: web.value(tier.scrape(), "gunicorn_worker_timeouts_total") == 1, 15, "timeout counted")
    samples = tier.scrape()
    assert web.value(samples, "gunicorn_worker_exits_total", reason="timeout") == 1
    assert web.value(samples, "gunicorn_worker_exits_total", reason="signal") == 0
    view = "drills:blocking-async" if asgi else "drills:worker-timeout"
    log = stack.wait_for(lambda: "worker timeout: pid=" in tier.gunicorn.log() and tier.gunicorn.log(), 10,
                         "timeout evidence logged")
    evidence = log[log.index("worker timeout: pid="):]
    assert f"view={view} method=GET path={drill} request_id=drill-timeout-1" in evidence
    stack_function = "blocking_async" if asgi else "worker_timeout"
    assert 'app/drills/views.py", line' in evidence and f"in {stack_function}" in evidence
    # the replacement worker serves again
    stack.wait_for(lambda: requests.get(f"{tier.url}/healthz", timeout=5).ok, 30, "a new worker serves")
    records = {p.name for p in (tier.metrics_dir / "gunicorn").glob("requests-*.json")}
    assert records == {f"requests-{pid}.json" for pid in tier.worker_pids()}  # the dead worker's were removed
