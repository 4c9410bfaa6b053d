"""Trivial tasks for drills, tests and benchmarks: succeed, fail, retry, overrun a time limit.

They are routed to the default queue and do no I/O beyond what their arguments ask for, so a
run of thousands measures Celery and its instrumentation, not the work.
"""
import os
import time
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

_LATE = {"acks_late": True, "reject_on_worker_lost": True}  # as the jobs tasks: a lost child requeues


class DrillError(Exception):
    """The failure a drill task raises on purpose."""


@shared_task(name="drills.ok", **_LATE)
def ok() -> None:
    """Succeed at once."""


@shared_task(name="drills.fail", **_LATE)
def fail() -> None:
    """Fail at once."""
    raise DrillError("drill failure")


@shared_task(name="drills.retry", bind=True, max_retries=None, **_LATE)
def retry(self, times: int = 1) -> None:
    """Retry `times` times without backoff (the retry-storm pattern), then succeed."""
    if self.request.retries < times:
        raise self.retry(countdown=0)


@shared_task(name="drills.sleep", soft_time_limit=1, time_limit=2, **_LATE)
def sleep(seconds: float, ignore_soft_limit: bool = False) -> None:
    """Sleep; past 1 s the soft limit fires, past 2 s (if the soft one is ignored) the hard one."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(remaining)
        except SoftTimeLimitExceeded:
            if not ignore_soft_limit:
                raise


@shared_task(name="drills.hang_once", **_LATE)
def hang_once(marker: str, seconds: float = 60.0) -> None:
    """First run: write the child's pid to `marker` and hang (to be killed); a redelivery returns."""
    path = Path(marker)
    if path.exists():
        return
    path.write_text(str(os.getpid()))
    time.sleep(seconds)


@shared_task(name="drills.busy", **_LATE)
def busy(seconds: float = 2.0) -> None:
    """Occupy a pool process for `seconds` (no time limit): the backlog drill's unit of work."""
    time.sleep(min(seconds, 60.0))


@shared_task(name="drills.reject", bind=True, **_LATE)
def reject(self) -> None:
    """Refuse the message without requeueing it (a poison message): counted as rejected."""
    from celery.exceptions import Reject

    raise Reject("drill: poison message", requeue=False)
