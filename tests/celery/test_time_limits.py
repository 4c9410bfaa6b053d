"""Soft and hard time-limit hits are counted once each, and the hard one as one failure."""
import pytest

from tests.support import stack
from tests.support.celery import produce, scrape, start_exporter, total

pytestmark = pytest.mark.integration


def test_soft_and_hard_time_limit_hits_are_counted(celery_env, var_dir, procs):
    procs.append(stack.start_celery_worker(celery_env, var_dir, concurrency=2))
    exporter, url = start_exporter(celery_env, var_dir)
    procs.append(exporter)
    produce(celery_env, "tasks.sleep.delay(3)",  # soft limit raises in the task: it fails
            "tasks.sleep.delay(6, ignore_soft_limit=True)")  # swallows the soft one: killed at the hard one

    def finished():
        s = scrape(url)
        return total(s, "celery_task_failed_total", name="drills.sleep") >= 2 and s

    s = stack.wait_for(finished, 30, "both sleep tasks failed", interval=0.5)
    hits = {limit: total(s, "celery_task_time_limit_exceeded_total", name="drills.sleep", limit=limit)
            for limit in ("soft", "hard")}
    assert hits == {"soft": 2, "hard": 1}
    failures = {exc: total(s, "celery_task_failed_total", name="drills.sleep", exception=exc)
                for exc in ("SoftTimeLimitExceeded", "TimeLimitExceeded")}
    assert failures == {"SoftTimeLimitExceeded": 1, "TimeLimitExceeded": 1}
    assert total(s, "celery_task_failed_total", name="drills.sleep") == 2
    assert total(s, "celery_task_started_total", name="drills.sleep") == 2
