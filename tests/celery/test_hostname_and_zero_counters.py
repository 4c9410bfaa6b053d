"""celery-exporter's hostname values and first-sight zero counters, in one process (no broker)."""
import pytest
from celery import Celery

from django_celery_ops import celery_metrics, celery_workers
from django_celery_ops.exporter import Config, Exporter


@pytest.mark.parametrize(("nodename", "expected"), [
    ("celery@web1", "web1"), ("w1@web1.example.com", "web1.example.com"), ("gen4321@web1", "web1"),
    ("web1", "web1"), (None, ""), ("", ""),
])
def test_hostname_is_the_host_part_of_the_node_name_as_celery_exporter(nodename, expected):
    assert celery_workers.host(nodename) == expected


def test_first_sight_creates_every_worker_state_counter_at_zero_once_and_never_sent(monkeypatch):
    monkeypatch.setattr(celery_metrics, "_zeroed", set())
    labels = ("tests.zero_task", "h0", "q0")
    calls = []
    real = celery_metrics.SUCCEEDED.labels
    monkeypatch.setattr(celery_metrics.SUCCEEDED, "labels", lambda *a: calls.append(a) or real(*a))
    for _ in range(3):
        assert celery_metrics._seen(*labels) == labels
    assert calls == [labels]  # once per labels per process
    for counter in (celery_metrics.RECEIVED, celery_metrics.STARTED, real.__self__, celery_metrics.RETRIED,
                    celery_metrics.REVOKED, celery_metrics.REJECTED):
        assert counter.labels(*labels)._value.get() == 0
    assert celery_metrics.FAILED.labels("tests.zero_task", "h0", "", "q0")._value.get() == 0
    sent = {s.labels.get("name") for m in celery_metrics.SENT.collect() for s in m.samples}
    assert "tests.zero_task" not in sent


def _gauges(exporter) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in exporter.collect() for s in m.samples}


def test_the_nodes_of_one_host_share_its_hostname_series():
    exporter = Exporter(Celery(broker="memory://", set_as_current=False), Config(cluster_metrics="always"))
    handlers = exporter.workers.handlers()
    for node, active, pool in [("w1@a", 2, 4), ("w2@a", 1, 2), ("w1@b", 0, 3)]:
        handlers["worker-heartbeat"]({"hostname": node, "active": active})
        handlers["worker-ops"]({"hostname": node, "concurrency": pool, "queues": ["default"]})
    g = _gauges(exporter)
    assert g[("celery_worker_up", (("hostname", "a"),))] == 1
    assert g[("celery_worker_tasks_active", (("hostname", "a"),))] == 3
    assert g[("celery_worker_concurrency", (("hostname", "a"),))] == 6
    assert g[("celery_active_worker_count", (("queue_name", "celery"),))] == 0  # nobody consumes "celery"
    handlers["worker-offline"]({"hostname": "w2@a"})
    g = _gauges(exporter)
    assert (g[("celery_worker_up", (("hostname", "a"),))], g[("celery_worker_tasks_active", (("hostname", "a"),))],
            g[("celery_worker_concurrency", (("hostname", "a"),))]) == (1, 2, 4)
    handlers["worker-offline"]({"hostname": "w1@a"})
    g = _gauges(exporter)  # every node of host a said goodbye: its series leave (no CeleryWorkerDown)
    assert not [key for key in g if key[1] == (("hostname", "a"),)]
    assert g[("celery_worker_up", (("hostname", "b"),))] == 1
    assert g[("celery_exporter_cluster_metrics", ())] == 1


def test_a_replica_without_the_lease_reports_no_cluster_gauge():
    exporter = Exporter(Celery(broker="memory://", set_as_current=False), Config())  # lease, never renewed
    exporter.workers.handlers()["worker-heartbeat"]({"hostname": "w1@a", "active": 1})
    names = {name for name, _ in _gauges(exporter)}
    assert names == {"celery_exporter_cluster_metrics", "celery_exporter_broker_up"}
