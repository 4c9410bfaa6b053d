"""celery-exporter's semantics, against real Redis, a real worker, the exporter and Prometheus.

Upstream: danihodovic/celery-exporter src/exporter.py at 95e8e492 (v0.12.2-25): every per-task
state counter but `sent` created at 0 when a task is first seen (`failed` with exception=""),
hostname = the host part of the node name, celery_task_runtime observed for successful runs.
The alert expressions are celery-mixin's, verbatim (fixtures/celery-mixin-alerts.yaml).
"""
import socket

import pytest

from tests.support.celery_mixin import mixin_alerts, query, start_prometheus
from tests.support import stack
from tests.support.celery import produce, scrape, start_exporter, total

pytestmark = pytest.mark.integration

STATES = ("received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
# celery-exporter's label names per family (src/exporter.py, state_counters and the histograms)
UPSTREAM_LABELS = {
    **{f"celery_task_{state}_total": {"name", "hostname", "queue_name"} for state in (*STATES, "sent")},
    "celery_task_failed_total": {"name", "hostname", "exception", "queue_name"},
    "celery_task_runtime_count": {"name", "hostname", "queue_name"},
    "celery_queue_length": {"queue_name"},
    "celery_active_worker_count": {"queue_name"},
    "celery_active_process_count": {"queue_name"},
    "celery_active_consumer_count": {"queue_name"},
    "celery_worker_up": {"hostname"},
    "celery_worker_tasks_active": {"hostname"},
}


@pytest.fixture
def live(celery_env, var_dir, procs):
    """A worker, the exporter, and Prometheus scraping it as job "celery-exporter" every second."""
    procs.append(stack.start_celery_worker(celery_env, var_dir, name="w1", concurrency=2, queues="default"))
    exporter, url = start_exporter(celery_env, var_dir)
    procs.append(exporter)
    prometheus, prom = start_prometheus(var_dir, {"celery-exporter": [url.removeprefix("http://")]})
    procs.append(prometheus)
    return url, prom


def test_a_task_that_always_fails_has_every_state_counter_at_zero_and_upstream_labels(live, celery_env):
    url, _ = live
    produce(celery_env, "for _ in range(5): tasks.fail.delay()", "for _ in range(3): tasks.ok.delay()")
    s = stack.wait_for(lambda: (total(x := scrape(url), "celery_task_failed_total", name="drills.fail") == 5
                                and total(x, "celery_task_succeeded_total", name="drills.ok") == 3 and x),
                       60, "5 failures and 3 successes counted")
    host = socket.gethostname()  # the worker runs as w1@<host>: upstream exports <host>
    for state in STATES:
        key = ("celery_task_%s_total" % state,
               frozenset({"name": "drills.fail", "hostname": host, "queue_name": "default",
                          **({"exception": ""} if state == "failed" else {})}.items()))
        assert key in s, f"no {state} series at 0 for drills.fail"
    zero = {state: s[(f"celery_task_{state}_total", frozenset(
        {"name": "drills.fail", "hostname": host, "queue_name": "default"}.items()))]
        for state in STATES if state != "failed"}
    assert zero == {"received": 5, "started": 5, "succeeded": 0, "retried": 0, "revoked": 0, "rejected": 0}
    assert total(s, "celery_task_failed_total", name="drills.fail", exception="DrillError", hostname=host) == 5
    assert total(s, "celery_task_failed_total", name="drills.fail", exception="") == 0
    # `sent` is never created at 0 (upstream: producers' hostnames would add cardinality)
    assert total(s, "celery_task_sent_total", name="drills.fail") == 5
    assert not [lab for (n, lab) in s if n == "celery_task_sent_total" and dict(lab)["hostname"] != host]
    assert {dict(lab)["hostname"] for (n, lab) in s if n.startswith("celery_task_")} == {host}
    # runtime: successful runs only (upstream); every finished run under our own name
    assert total(s, "celery_task_runtime_count", name="drills.fail") == 0
    assert total(s, "celery_task_runtime_count", name="drills.ok") == 3
    assert total(s, "celery_task_execution_seconds_count", name="drills.fail") == 5
    assert total(s, "celery_task_execution_seconds_count", name="drills.ok") == 3
    stack.wait_for(lambda: total(scrape(url), "celery_worker_up", hostname=host) == 1, 20, "worker up as <host>")
    s = scrape(url)
    for family, labels in UPSTREAM_LABELS.items():
        seen = {frozenset(dict(lab)) for (n, lab) in s if n == family}
        assert seen == {frozenset(labels)}, (family, seen)


def test_celery_mixin_fail_rate_alert_fires_for_a_task_that_always_fails_and_not_for_one_that_succeeds(
        live, celery_env):
    url, prom = live
    alerts = mixin_alerts()
    expr = alerts["CeleryTaskHighFailRate"]
    stack.wait_for(lambda: query(prom, "up") and all(query(prom, "up").values()), 20, "exporter scraped")
    # spread over a few scrapes: increase() needs a series' samples to grow inside the window
    for _ in range(4):
        produce(celery_env, "for _ in range(3): tasks.fail.delay()", "for _ in range(3): tasks.ok.delay()")
    stack.wait_for(lambda: total(scrape(url), "celery_task_failed_total", name="drills.fail") == 12, 60,
                   "12 failures counted")

    def firing():
        return {dict(lab)["name"]: value for lab, value in query(prom, expr).items()}

    result = stack.wait_for(lambda: "drills.fail" in firing() and firing(), 30, "mixin fail-rate expression")
    assert result == {"drills.fail": 100.0}, result
    labels = dict(next(iter(query(prom, expr))))
    assert labels == {"job": "celery-exporter", "queue_name": "default", "name": "drills.fail"}
    # the same ratio as the mixin's by-task dashboard: 0 % success, not "no data"
    success = query(prom, 'sum(increase(celery_task_succeeded_total{job=~".*celery.*", name="drills.fail"}[10m]))')
    assert list(success.values()) == [0.0]
    assert query(prom, alerts["CeleryWorkerDown"]) == {}
    assert query(prom, alerts["CeleryHighQueueLength"]) == {}
    stack.wait_for(lambda: query(prom, 'sum by (job, namespace, queue_name) (celery_queue_length'
                                       '{job=~".*celery.*", queue_name!~"None"})'), 10, "queue length series")
