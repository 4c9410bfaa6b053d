"""SeriesPolicy: values beyond a cap folded in first-seen order, gone workers' hostnames forgotten."""
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from django_celery_ops import exposition
from django_celery_ops.cardinality import FOLDED, SeriesPolicy, exporter_policy
from django_celery_ops.celery_workers import WorkerTracker
from django_celery_ops.slotreader import SlotReader


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _samples(registry) -> dict:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_values_beyond_the_cap_fold_into_one_in_first_seen_order_and_are_counted():
    policy = SeriesPolicy(fold={"view": 2})
    seen = [policy("django_http_x_total", {"view": v, "method": "GET"})["view"] for v in "abacdb"]
    assert seen == ["a", "b", "a", FOLDED, FOLDED, "b"]
    assert policy("django_http_x_total", {"view": FOLDED})["view"] == FOLDED  # takes no slot
    assert policy("django_http_x_total", {"method": "GET"}) == {"method": "GET"}  # no such label: as is
    assert policy.folded("view") == {"c", "d"}
    assert policy.version == 0  # folding never changes an earlier answer
    samples = _samples(_registry(policy))
    assert samples[("django_celery_ops_cardinality_folded_total", (("label", "view"),))] == 2


def test_a_cap_of_zero_folds_nothing():
    policy = SeriesPolicy(fold={"name": 0})
    assert [policy("celery_task_sent_total", {"name": str(i)})["name"] for i in range(5)] == list("01234")


def _registry(policy):
    registry = CollectorRegistry()
    registry.register(policy)
    return registry


def _slot_file(path, *series):
    db = MmapedDict(str(path))
    for name, labels, value in series:
        db.write_value(mmap_key(name.removesuffix("_total"), name, list(labels), list(labels.values()), "doc"),
                       value, 0.0)
    db.close()


def test_the_slot_reader_serves_folded_series_summed_exactly_from_real_slot_files(tmp_path):
    family = "celery_task_succeeded_total"
    _slot_file(tmp_path / "counter_1.db",
               *[(family, {"name": n, "hostname": "h", "queue_name": "q"}, v) for n, v in [("t1", 1), ("t2", 2),
                                                                                          ("t3", 4), ("t4", 8)]])
    _slot_file(tmp_path / "counter_2.db", (family, {"name": "t4", "hostname": "h", "queue_name": "q"}, 16))
    policy = SeriesPolicy(fold={"name": 2})
    text = exposition.generate([SlotReader(str(tmp_path), series_filter=policy), policy]).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    served = {dict(labels)["name"]: v for (name, labels), v in samples.items() if name == family}
    truth = {"t1": 1, "t2": 2, "t3": 4, "t4": 24}
    kept = [n for n in served if n != FOLDED]
    assert len(kept) == 2 and all(served[n] == truth[n] for n in kept)
    assert served[FOLDED] == sum(v for n, v in truth.items() if n not in kept)
    assert policy.folded("name") == set(truth) - set(kept)


def _exporter_policy(forget=60):
    clock = Clock()
    tracker = WorkerTracker(timeout=10, clock=clock)
    tracker.listening(True)
    policy = SeriesPolicy(fold={"name": 100}, workers=tracker, forget_seconds=forget, clock=clock)
    return tracker, policy, clock


LABELS = {"name": "t", "hostname": "a", "queue_name": "q"}


def test_a_worker_that_said_goodbye_leaves_the_tracker_at_once_and_its_series_after_the_delay():
    tracker, policy, clock = _exporter_policy()
    h = tracker.handlers()
    h["worker-heartbeat"]({"hostname": "w1@a", "active": 0})
    assert policy("celery_task_started_total", LABELS) == LABELS
    h["worker-offline"]({"hostname": "w1@a"})
    assert tracker.snapshot() == {}  # no celery_worker_up series: nothing for CeleryWorkerDown to page on
    assert tracker.hosts() == {"a": clock.now}
    clock.now += 59
    assert policy.version == 0
    clock.now += 2
    assert policy.version == 1
    assert policy("celery_task_started_total", LABELS) is None
    assert policy.forgotten() == {"a"}
    assert _samples(_registry(policy))[("django_celery_ops_cardinality_forgotten_total", (("label", "hostname"),))] == 1
    h["worker-online"]({"hostname": "w1@a"})  # the same host again: its series come back
    assert policy.version == 2
    assert policy("celery_task_started_total", LABELS) == LABELS


def test_a_silent_worker_stays_down_and_is_forgotten_with_its_series_after_the_delay():
    tracker, policy, clock = _exporter_policy()
    tracker.handlers()["worker-heartbeat"]({"hostname": "w1@a", "active": 1})
    policy("celery_task_started_total", LABELS)
    clock.now += 11
    assert not tracker.snapshot()["w1@a"].up  # celery_worker_up 0: CeleryWorkerDown fires
    clock.now += 50  # 61 s after the last heartbeat
    assert policy.version == 1 and policy.forgotten() == {"a"}
    tracker.forget(60)
    assert tracker.snapshot() == {}


def test_a_host_the_tracker_purged_before_the_policy_judged_it_is_forgotten_all_the_same():
    tracker, policy, clock = _exporter_policy()
    tracker.handlers()["worker-heartbeat"]({"hostname": "w1@a", "active": 0})
    policy("celery_task_started_total", LABELS)
    clock.now += 61
    tracker.forget(60)  # the exporter's scrape purges the tracker first
    assert tracker.hosts() == {}
    assert policy.version == 1 and policy("celery_task_started_total", LABELS) is None


def test_a_host_of_one_live_node_is_kept_while_another_node_of_it_is_gone():
    tracker, policy, clock = _exporter_policy()
    h = tracker.handlers()
    h["worker-heartbeat"]({"hostname": "w1@a", "active": 0})
    h["worker-heartbeat"]({"hostname": "w2@a", "active": 0})
    h["worker-offline"]({"hostname": "w2@a"})
    policy("celery_task_started_total", LABELS)
    for _ in range(10):
        clock.now += 9
        h["worker-heartbeat"]({"hostname": "w1@a", "active": 0})
    assert tracker.hosts() == {"a": None}
    assert policy.version == 0 and policy("celery_task_started_total", LABELS) == LABELS


def test_a_hostname_no_worker_event_names_is_forgotten_from_its_first_sight_but_not_while_deaf():
    tracker, policy, clock = _exporter_policy()
    stale = {**LABELS, "hostname": "old-pod"}
    assert policy("celery_task_started_total", stale) == stale  # files from before the exporter started
    tracker.listening(False)  # the event stream is down: nobody is judged
    clock.now += 120
    assert policy.version == 0
    tracker.listening(True)
    clock.now += 59
    assert policy.version == 0
    clock.now += 2
    assert policy.version == 1 and policy("celery_task_started_total", stale) is None


def test_producer_hostnames_of_celery_task_sent_and_the_empty_hostname_are_never_forgotten():
    tracker, policy, clock = _exporter_policy()
    web = {"name": "t", "hostname": "web-1", "queue_name": "q"}
    nobody = {**LABELS, "hostname": ""}  # a revoked message discarded before any worker ran it
    assert policy("celery_task_sent_total", web) == web
    assert policy("celery_task_revoked_total", nobody) == nobody
    clock.now += 1000
    assert policy.version == 0 and policy("celery_task_sent_total", web) == web
    assert policy("celery_task_revoked_total", nobody) == nobody


def test_a_forget_delay_of_zero_forgets_nothing():
    tracker, policy, clock = _exporter_policy(forget=0)
    tracker.handlers()["worker-offline"]({"hostname": "w1@a"})
    policy("celery_task_started_total", LABELS)
    clock.now += 10**6
    assert policy.version == 0 and policy("celery_task_started_total", LABELS) == LABELS


def test_the_exporter_policy_caps_task_names_only():
    policy = exporter_policy(WorkerTracker(timeout=10), forget_seconds=60, max_task_names=1)
    assert policy("x_total", {"name": "a", "view": "v1"}) == {"name": "a", "view": "v1"}
    assert policy("x_total", {"name": "b", "view": "v2"}) == {"name": FOLDED, "view": "v2"}


@pytest.mark.integration  # serves HTTP on a free port
def test_the_web_metrics_server_folds_views_beyond_obs_metrics_max_views(tmp_path, monkeypatch):
    import threading

    import requests

    from django_celery_ops import metrics_server

    family = "django_http_requests_total_by_view_transport_method_total"
    _slot_file(tmp_path / "counter_1.db",
               *[(family, {"view": f"v{i}", "transport": "http", "method": "GET"}, 1.0) for i in range(5)])
    monkeypatch.setenv("OBS_METRICS_MAX_VIEWS", "3")
    server = metrics_server.make_server("127.0.0.1", 0, str(tmp_path))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        text = requests.get(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10).text
    finally:
        server.shutdown()
        server.server_close()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    views = {dict(labels)["view"]: v for (name, labels), v in samples.items() if name == family}
    assert len(views) == 4 and views[FOLDED] == 2 and sum(views.values()) == 5
    assert samples[("django_celery_ops_cardinality_folded_total", (("label", "view"),))] == 2
