"""Every scrape job has a sample_limit, and the limits leave room for a target at its cardinality caps."""
import yaml

from django_celery_ops import cardinality
from tests.ops.procs import PROMETHEUS_DIR

SERIES_PER_VIEW = 21  # one method and one status: latency histogram (17 buckets, _count, _sum) + 2 counters
SERIES_PER_TASK_HOST_QUEUE = 58  # 6 state counters, failed{exception=""}, 3 histograms of 17 (docs/scaling.md)


def _jobs():
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    return {job["job_name"]: job for job in config["scrape_configs"]}


def test_every_scrape_job_has_a_sample_limit():
    jobs = _jobs()
    assert jobs and all(isinstance(job.get("sample_limit"), int) and job["sample_limit"] > 0
                        for job in jobs.values()), {name: job.get("sample_limit") for name, job in jobs.items()}


def test_the_limits_hold_a_web_tier_and_one_worker_host_at_their_caps():
    jobs = _jobs()
    for tier in ("django-wsgi", "django-asgi"):
        assert jobs[tier]["sample_limit"] >= 2 * SERIES_PER_VIEW * cardinality.DEFAULT_MAX_VIEWS, tier
    one_host = SERIES_PER_TASK_HOST_QUEUE * cardinality.DEFAULT_MAX_TASK_NAMES
    assert jobs["celery-exporter"]["sample_limit"] >= 4 * one_host  # a few hosts (or queues) at the name cap
