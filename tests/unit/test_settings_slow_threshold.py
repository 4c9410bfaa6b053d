"""The slow-request threshold is one number: the app's default, the rules' threshold and a real
histogram bucket boundary, or DjangoSlowRequests and the latency SLO silently read nothing."""
import json
import os
import re
import subprocess
import sys

import pytest
import yaml
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.utils import floatToGoString

from django_celery_ops.monitoring import config
from tests.support.stack import ROOT


def _rules_threshold() -> float:
    """The rules' slow threshold: slo.latency_seconds of this project's monitoring config."""
    return float(config.load(ROOT / "ops/monitoring.yml")["slo"]["latency_seconds"])

LATENCY = "django_http_requests_latency_seconds_by_view_method"


def _app_settings(**env) -> tuple[float, tuple]:
    """SLOW_REQUEST_SECONDS and LATENCY_BUCKETS (env OBS_SLOW_REQUEST_SECONDS) as a fresh process reads them."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "OBS_", "DRILLS_", "JOBS_", "PROMETHEUS_"))}
    code = ("import json, django; django.setup(); from django_celery_ops import conf; "
            "print(json.dumps([conf.get('SLOW_REQUEST_SECONDS'), conf.get('LATENCY_BUCKETS')]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**clean, "DJANGO_SETTINGS_MODULE": "app.settings", "DJANGO_ENV": "test", **env}).stdout
    slow, buckets = json.loads(out)  # inf travels as Infinity
    return slow, tuple(buckets)


def _exported_le(buckets) -> set[str]:
    """The le label values a histogram with these buckets really exports."""
    registry = CollectorRegistry()
    Histogram("h_seconds", "h", buckets=buckets, registry=registry).observe(0.2)
    return {s.labels["le"] for m in registry.collect() for s in m.samples if s.name == "h_seconds_bucket"}


def _rules_le() -> set[str]:
    found = set()
    for path in sorted((ROOT / "ops/prometheus/rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if LATENCY in rule["expr"]:
                    found |= set(re.findall(LATENCY + r'_bucket\{[^}]*le="([^"]+)"', rule["expr"]))
    return found


def test_the_apps_default_is_the_rules_threshold():
    slow, _ = _app_settings()
    assert slow == _rules_threshold()


def test_the_threshold_is_a_bucket_boundary_the_histogram_exports():
    slow, buckets = _app_settings()
    assert slow in buckets
    assert floatToGoString(slow) in _exported_le(buckets)


def test_every_latency_rule_reads_the_bucket_of_the_threshold():
    _, buckets = _app_settings()
    le = _rules_le()
    assert le == {floatToGoString(_rules_threshold())}, le  # one threshold, written as exported
    assert le <= _exported_le(buckets)


@pytest.mark.parametrize("value", ["0.3", "2.0", "1.5"])
def test_an_overridden_threshold_becomes_a_bucket_and_the_rules_bucket_stays(value):
    slow, buckets = _app_settings(OBS_SLOW_REQUEST_SECONDS=value)
    assert slow == float(value)
    assert {floatToGoString(slow)} | _rules_le() <= _exported_le(buckets)
