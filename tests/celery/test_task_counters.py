"""Task counters equal what happened: many mixed tasks, recycled children, a child SIGKILLed mid-task."""
import os
import signal
import socket

import pytest

from tests.support import stack
from tests.support.celery import produce, scrape, start_exporter, total

pytestmark = pytest.mark.integration

N_OK, N_FAIL, N_RETRY = 7000, 2000, 1000  # 10,000 tasks; each retry task retries once


def _finished(url):
    s = scrape(url)
    done = (total(s, "celery_task_succeeded_total") + total(s, "celery_task_failed_total"))
    return done >= N_OK + N_FAIL + N_RETRY + 1 and total(s, "celery_queue_length") == 0 and s


def test_every_counter_equals_what_happened_across_recycling_and_a_killed_child(celery_env, var_dir, procs):
    worker = stack.start_celery_worker(celery_env, var_dir, concurrency=2,
                                       extra=["--max-tasks-per-child", "250", "--prefetch-multiplier", "4"])
    procs.append(worker)
    exporter, url = start_exporter(celery_env, var_dir)
    procs.append(exporter)

    marker = var_dir / "hang.pid"
    produce(celery_env, f"tasks.hang_once.delay({str(marker)!r}, 600)")  # hangs until killed, however slow
    pid = int(stack.wait_for(lambda: marker.exists() and marker.read_text(), 30, "hang_once started"))
    produce(celery_env,
            f"for _ in range({N_OK}): tasks.ok.delay()",
            f"for _ in range({N_FAIL}): tasks.fail.delay()",
            f"for _ in range({N_RETRY}): tasks.retry.delay(1)")
    os.kill(pid, signal.SIGKILL)  # mid-task: the message is requeued (reject_on_worker_lost) and runs again
    s = stack.wait_for(lambda: _finished(url), 150, "all tasks finished", interval=1)

    host = worker_host = next(dict(lab)["hostname"] for (n, lab) in s if n == "celery_task_started_total")
    assert worker_host == socket.gethostname()  # celery-exporter's hostname: the host part of w1@<host>
    expected = {
        # counter: {task: count}
        "celery_task_sent_total": {"drills.ok": N_OK, "drills.fail": N_FAIL, "drills.retry": 2 * N_RETRY,
                                   "drills.hang_once": 1},
        "celery_task_received_total": {"drills.ok": N_OK, "drills.fail": N_FAIL, "drills.retry": 2 * N_RETRY,
                                       "drills.hang_once": 2},
        "celery_task_started_total": {"drills.ok": N_OK, "drills.fail": N_FAIL, "drills.retry": 2 * N_RETRY,
                                      "drills.hang_once": 2},
        "celery_task_succeeded_total": {"drills.ok": N_OK, "drills.fail": 0, "drills.retry": N_RETRY,
                                        "drills.hang_once": 1},
        "celery_task_failed_total": {"drills.ok": 0, "drills.fail": N_FAIL, "drills.retry": 0,
                                     "drills.hang_once": 0},
        "celery_task_retried_total": {"drills.ok": 0, "drills.fail": 0, "drills.retry": N_RETRY,
                                      "drills.hang_once": 0},
        "celery_task_rejected_total": {"drills.ok": 0, "drills.fail": 0, "drills.retry": 0, "drills.hang_once": 1},
        "celery_task_revoked_total": {"drills.ok": 0, "drills.fail": 0, "drills.retry": 0, "drills.hang_once": 0},
        # celery_task_runtime: successful executions only (celery-exporter) ...
        "celery_task_runtime_count": {"drills.ok": N_OK, "drills.fail": 0, "drills.retry": N_RETRY,
                                      "drills.hang_once": 1},
        # ... celery_task_execution_seconds: every execution that finished (the killed one did not) ...
        "celery_task_execution_seconds_count": {"drills.ok": N_OK, "drills.fail": N_FAIL,
                                                "drills.retry": 2 * N_RETRY, "drills.hang_once": 1},
        # ... and every start a queue wait
        "celery_task_queue_wait_time_count": {"drills.ok": N_OK, "drills.fail": N_FAIL,
                                              "drills.retry": 2 * N_RETRY, "drills.hang_once": 2},
    }
    actual = {metric: {task: total(s, metric, name=task) for task in counts} for metric, counts in expected.items()}
    assert actual == expected
    assert total(s, "celery_task_failed_total", exception="DrillError", queue_name="default") == N_FAIL
    assert total(s, "celery_task_started_total", hostname=host, queue_name="default") == N_OK + N_FAIL + 2 * N_RETRY + 2
    assert "Process 'ForkPoolWorker" in worker.log() and "SIGKILL" in worker.log()
    # recycling kept the folder bounded by live processes: slots, not one file set per child
    children = {p.name for p in (var_dir / "metrics" / "celery").glob("counter_celery-child-*.db")}
    assert 1 <= len(children) <= 3, children
