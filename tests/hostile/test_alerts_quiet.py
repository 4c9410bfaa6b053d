"""The hostile battery, three times on both tiers, under a real Prometheus with the committed rules:
the 4xx are scraped, no 5xx, and no critical alert is pending or firing after two evaluations."""
import json
import time
import urllib.parse
import urllib.request

import pytest

from ops.drills import procs as ops_procs
from tests.support import stack
from tests.support.hostile import start_hostile_tier
from tests.support.hostile_cases import CASES

pytestmark = pytest.mark.integration
RESPONSES = "django_http_responses_total_by_status_view_method_total"


def _query(prom, expr: str) -> list:
    url = f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.load(answer)["data"]["result"]


def _scalar(prom, expr: str) -> float:
    result = _query(prom, expr)
    return float(result[0]["value"][1]) if result else 0.0


def test_the_battery_fires_no_critical_alert_and_counts_no_5xx(tmp_path_factory):
    redis, port = stack.start_redis(tmp_path_factory.mktemp("quiet-redis"))
    started = [redis]
    try:
        url = f"redis://127.0.0.1:{port}/0"
        tiers = {}
        for job, asgi in (("django-wsgi", False), ("django-asgi", True)):
            tier, more = start_hostile_tier(tmp_path_factory, f"quiet-{job}", asgi=asgi, broker_url=url,
                                            JOBS_API_RATE_LIMIT_CACHE_URL=f"redis://127.0.0.1:{port}/2")
            started += more
            tiers[job] = tier
        targets = {job: [t.tier.metrics_url.split("//")[1].removesuffix("/metrics")] for job, t in tiers.items()}
        with ops_procs.start_prometheus(tmp_path_factory.mktemp("quiet-prom"), targets=targets,
                                        scrape_interval="1s", evaluation_interval="1s") as prom:
            stack.wait_for(lambda: _scalar(prom, 'count(up{job=~"django-.*"} == 1)') == 2, 30, "both tiers scraped")
            for _ in range(3):
                for tier in tiers.values():
                    for _case, data, status, _rules in CASES:
                        assert tier.send(data).status == status
            stack.wait_for(lambda: _scalar(prom, f'sum({RESPONSES}{{status=~"4.."}})') >= 3 * 2 * len(CASES), 30,
                           "the 4xx scraped")
            time.sleep(2.5)  # two evaluation intervals after the last scrape that saw them
            assert _scalar(prom, f'sum({RESPONSES}{{status=~"5.."}})') == 0
            critical = _query(prom, 'ALERTS{severity="critical"}')
            assert not critical, [a["metric"] for a in critical]
            server_error_alerts = _query(prom, 'ALERTS{alertname=~"DjangoHighServerErrorRate|DjangoAvailabilityBudgetBurn"}')
            assert not server_error_alerts, [a["metric"] for a in server_error_alerts]
            with urllib.request.urlopen(f"{prom.url}/api/v1/rules?type=alert", timeout=5) as answer:
                rules = [r["name"] for g in json.load(answer)["data"]["groups"] for r in g["rules"]]
            assert "DjangoAvailabilityBudgetBurn" in rules and "DjangoHighServerErrorRate" in rules
    finally:
        for proc in reversed(started):
            proc.stop()
