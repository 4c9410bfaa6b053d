"""Job metrics (docs/jobs.md): jobs finished by kind and state, and the sweeper's own gauges.

jobs_finished_total is counted by whichever process first makes a row final (web tier,
worker, sweeper). The sweeper's metrics are created on first use, in the sweeper only: an
unlabelled gauge writes a value as soon as it exists, and a heartbeat of 0 from a web process
would look like a dead sweeper.
"""
from functools import cache

from prometheus_client import Counter, Gauge

from app.jobs.kinds import KINDS

FINAL_STATES = ("succeeded", "failed")
OPEN_STATES = ("queued", "running", "retrying")
REPUBLISH_REASONS = ("outbox", "lost_message", "retry_due")

jobs_finished = Counter("jobs_finished", "Jobs that reached a final state, by kind and state.", ["kind", "state"])
for _kind in KINDS:
    for _state in FINAL_STATES:
        jobs_finished.labels(_kind, _state)


def finished(kind: str, state: str) -> None:
    jobs_finished.labels(kind, state).inc()


class _Sweeper:
    def __init__(self):
        self.last_success = Gauge("jobs_sweeper_last_success_timestamp_seconds",
                                  "Unix time at the end of the last sweep that completed.", multiprocess_mode="max")
        self.errors = Counter("jobs_sweeper_errors", "Sweeps that raised (logged, counted, retried with backoff).")
        self.outbox_age = Gauge("jobs_outbox_oldest_age_seconds", "Age of the oldest accepted job not yet published.",
                                multiprocess_mode="livemax")
        self.oldest_age = Gauge("jobs_oldest_age_seconds", "Age of the oldest job in each non-final state, "
                                "from when it entered it.", ["state"], multiprocess_mode="livemax")
        self.deadline = Gauge("jobs_deadline_seconds", "Deadline per non-final state (JOBS_DEADLINE_*_SECONDS).",
                              ["state"], multiprocess_mode="livemax")
        self.republished = Counter("jobs_republished", "Jobs published again by the sweeper, by reason.", ["reason"])
        for reason in REPUBLISH_REASONS:
            self.republished.labels(reason)


@cache
def sweeper() -> _Sweeper:
    """The sweeper's metrics, created in the calling process on first use."""
    return _Sweeper()


def republished(reason: str) -> None:
    sweeper().republished.labels(reason).inc()


def set_outbox_age(seconds: float) -> None:
    sweeper().outbox_age.set(seconds)


def set_oldest_age(state: str, seconds: float) -> None:
    sweeper().oldest_age.labels(state).set(seconds)


def set_deadlines(deadlines: dict[str, float]) -> None:
    for state, seconds in deadlines.items():
        sweeper().deadline.labels(state).set(seconds)
