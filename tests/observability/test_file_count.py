"""Worker recycling does not grow the multiprocess folder: files are bounded by the live processes."""
import pytest
import requests

from tests.support import web

pytestmark = pytest.mark.integration


def test_file_count_stays_bounded_after_many_recycles(start_tier):
    tier = start_tier(workers=2, GUNICORN_MAX_REQUESTS="1", GUNICORN_MAX_REQUESTS_JITTER="0")

    def files() -> int:
        return sum(1 for p in tier.metrics_dir.rglob("*") if p.is_file())

    def slots() -> set[str]:
        """Slot ids that own metric files (<kind>_<slot>.db); stock mode would have one per pid."""
        return {p.stem.rsplit("_", 1)[-1] for p in tier.metrics_dir.rglob("*.db")}

    # The readiness probe's requests: one, or more when a slow boot made it retry (2 s timeout).
    probed = web.value(tier.scrape(), "django_http_responses_total_by_status_view_method_total", view="healthz")
    with requests.Session() as session:
        for _ in range(10):
            session.get(f"{tier.url}/healthz", headers={"Connection": "close"}, timeout=10)
    after_ten, slots_after_ten = files(), slots()
    sent = 10
    with requests.Session() as session:
        for _ in range(50):
            assert session.get(f"{tier.url}/healthz", headers={"Connection": "close"}, timeout=10).ok
            sent += 1
    samples = tier.scrape()
    assert web.value(samples, "gunicorn_worker_exits_total", reason="recycled") >= 50
    # At most one more slot than after ten recycles: a replacement may boot before the worker it
    # replaces has released its slot. Stock prometheus_client would have added 50 pids' files.
    assert len(slots()) <= len(slots_after_ten) + 1, (slots_after_ten, slots())
    assert files() <= after_ten * 2
    assert web.value(samples, "django_http_responses_total_by_status_view_method_total", view="healthz") == sent + probed
