"""Errors and worker timeouts reach Sentry (a local fake ingest endpoint), tagged with view and release."""
import pytest
import requests

from tests.support import stack
from tests.support.fake_sentry import FakeSentry

pytestmark = pytest.mark.integration


@pytest.fixture
def sentry():
    with FakeSentry() as fake:
        yield fake


def test_an_exception_in_a_view_reaches_sentry_with_view_and_release(start_tier, sentry):
    tier = start_tier(workers=2, SENTRY_DSN=sentry.dsn, SENTRY_RELEASE="web@1.2.3", SENTRY_ENVIRONMENT="drill",
                      SENTRY_TRACES_SAMPLE_RATE="0")
    assert requests.get(f"{tier.url}/drills/error/", timeout=10).status_code == 500
    [event] = stack.wait_for(lambda: [e for e in sentry.events() if e.get("exception")], 15, "the error event")
    assert event["exception"]["values"][-1]["type"] == "DrillError"
    assert event["transaction"] == "/drills/error/"
    assert event["tags"]["view"] == "drills:error"
    assert event["release"] == "web@1.2.3" and event["environment"] == "drill"
    assert "cookies" not in event.get("request", {}) and "user" not in event  # send_default_pii=False
    assert not sentry.transactions()  # traces sampling 0: errors only


def test_a_worker_timeout_reaches_sentry_from_the_replacement_worker(start_tier, sentry):
    tier = start_tier(workers=1, GUNICORN_TIMEOUT="2", SENTRY_DSN=sentry.dsn, SENTRY_RELEASE="web@1.2.3")
    with pytest.raises(requests.RequestException):
        requests.get(f"{tier.url}/drills/worker-timeout/?seconds=30", timeout=20).raise_for_status()
    [event] = stack.wait_for(lambda: [e for e in sentry.events() if "WORKER TIMEOUT" in str(e.get("message", e.get("logentry")))],
                             30, "the timeout event")
    assert event["tags"]["view"] == "drills:worker-timeout"
    assert event["tags"]["path"] == "/drills/worker-timeout/"
    assert "in worker_timeout" in event["contexts"]["worker_timeout"]["stack"]
    assert event["release"] == "web@1.2.3"


def test_without_a_dsn_sentry_stays_off(settings):
    from django_celery_ops import sentry

    settings.DJANGO_CELERY_OPS = {**settings.DJANGO_CELERY_OPS, "SENTRY": {"DSN": ""}}
    assert sentry.init() is False
