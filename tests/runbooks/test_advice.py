"""The advice the runbooks give agrees with the code and the config (issue #16's corrections)."""

import re

import pytest
from django.conf import settings

from app.jobs import services
from tests.ops.procs import REPO
from tests.support.runbooks import load_runbooks, section

RUNBOOKS = load_runbooks()


def test_worker_timeouts_tells_the_slow_client_and_the_asgi_case_apart_and_cures_with_the_proxy():
    page = RUNBOOKS["GunicornWorkerTimeouts"]
    diagnosis, mitigation = section(page, "Diagnosis"), section(page, "Mitigation")
    assert "`view=None in_flight=0`" in diagnosis and "gunicorn/http/" in diagnosis  # trickled headers
    assert "LimitedStream.read" in diagnosis  # a slow request body read inside the view
    assert "every request in flight on that worker" in section(page, "Impact")
    assert "docs/proxy.md" in mitigation and "proxy_request_buffering on" in mitigation
    assert "proxy_request_buffering on" in (REPO / "docs" / "proxy.md").read_text()


@pytest.mark.django_db
def test_worker_down_says_when_lost_jobs_fail_and_how_to_rerun_them():
    page = RUNBOOKS["CeleryWorkerDown"]
    impact, mitigation = section(page, "Impact"), section(page, "Mitigation")
    minutes = int(re.search(r"about (\d+) minutes by default", impact)[1])
    assert minutes == round(services.abandoned_after_seconds() / 60, -1)
    assert f"{settings.CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout'] // 3600} hour" in impact
    assert "manage.py jobs_rerun" in mitigation and "Re-run the selected failed jobs" in mitigation
    assert re.search(r"gracefully\*\*[^.]*says\s+goodbye[^.]*forgets it", section(page, "Meaning"))  # no page


def test_redis_down_and_the_exporter_are_told_apart_and_readyz_stays_ready():
    down, exporter = RUNBOOKS["RedisDown"], RUNBOOKS["RedisExporterDown"]
    assert "RedisExporterDown" in section(down, "Meaning") and "RedisDown" in section(exporter, "Meaning")
    assert '`"degraded": ["broker"]`' in section(down, "Impact") and "503" in section(down, "Impact")
    assert not re.search(r"readyz[^\n]*503 naming `broker`", down)


def test_availability_impact_gives_each_windows_failed_share_from_the_config(monitoring_config):
    slo = monitoring_config["slo"]
    impact = section(RUNBOOKS["DjangoAvailabilityBudgetBurn"], "Impact")
    budget = 1 - slo["availability"]
    for key, long in (("page_1h_burn_rate", "1h"), ("page_6h_burn_rate", "6h"), ("ticket_1d_burn_rate", "1d"),
                      ("ticket_3d_burn_rate", "3d")):
        row = next(line for line in impact.splitlines() if line.startswith("|") and f"| {long} and" in line)
        share = float(re.search(r"\| ([\d.]+)% over", row)[1])
        assert share == pytest.approx(slo[key] * budget * 100), (row, slo[key])
    meaning = section(RUNBOOKS["DjangoAvailabilityBudgetBurn"], "Meaning")
    assert "WORKER TIMEOUT" in meaning and "healthz" in meaning and "readyz" in meaning


def test_backlog_arithmetic_is_aggregated_by_queue_not_matched_on_job():
    diagnosis = section(RUNBOOKS["CeleryQueueBacklog"], "Diagnosis")
    assert "sum by (queue_name) (rate(celery_task_sent_total" in diagnosis
    assert "sum by (job, queue_name) (rate(celery_task_sent_total" not in diagnosis
