"""WorkerTracker: up from heartbeats, gone on goodbye, down on silence (judged only while listening)."""
from django_celery_ops.celery_workers import WorkerTracker


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _tracker():
    clock = Clock()
    tracker = WorkerTracker(timeout=10, clock=clock)
    tracker.listening(True)
    return tracker, clock


def test_a_silent_worker_is_down_after_the_timeout_and_its_active_tasks_are_zero():
    tracker, clock = _tracker()
    h = tracker.handlers()
    h["worker-heartbeat"]({"hostname": "w1@a", "active": 2})
    h["worker-ops"]({"hostname": "w1@a", "concurrency": 4, "queues": ["default"]})
    clock.now += 9
    assert tracker.snapshot()["w1@a"].up
    clock.now += 2
    state = tracker.snapshot()["w1@a"]
    assert (state.up, state.active, state.concurrency, state.queues) == (False, 0, 4, ["default"])
    h["worker-heartbeat"]({"hostname": "w1@a", "active": 1})
    assert tracker.snapshot()["w1@a"].up


def test_a_worker_that_says_goodbye_is_forgotten_at_once_and_comes_back_when_it_returns():
    tracker, clock = _tracker()
    tracker.handlers()["worker-online"]({"hostname": "w1@a"})
    tracker.handlers()["worker-offline"]({"hostname": "w1@a"})
    assert tracker.snapshot() == {}
    assert tracker.hosts() == {"a": clock.now}  # gone since now: its task series leave after the purge
    tracker.handlers()["worker-heartbeat"]({"hostname": "w1@a", "active": 0})
    assert tracker.snapshot()["w1@a"].up and tracker.hosts() == {"a": None}


def test_a_broker_outage_does_not_mark_workers_down_and_the_timeout_restarts_on_reconnect():
    tracker, clock = _tracker()
    tracker.handlers()["worker-heartbeat"]({"hostname": "w1@a", "active": 0})
    tracker.listening(False)
    clock.now += 60
    assert tracker.snapshot()["w1@a"].up
    tracker.listening(True)
    clock.now += 9
    assert tracker.snapshot()["w1@a"].up
    clock.now += 2
    assert not tracker.snapshot()["w1@a"].up


def test_down_workers_are_forgotten_after_the_purge_delay():
    tracker, clock = _tracker()
    tracker.handlers()["worker-heartbeat"]({"hostname": "w1@a", "active": 0})
    tracker.handlers()["worker-offline"]({"hostname": "w2@a"})
    clock.now += 11
    assert not tracker.snapshot()["w1@a"].up
    clock.now += 19
    tracker.forget(60)
    assert "w1@a" in tracker.snapshot()
    clock.now += 31
    tracker.forget(60)
    assert tracker.snapshot() == {} and tracker.hosts() == {}
