"""A worker that says goodbye leaves the exporter's output at once; one that vanished reports up 0, then is forgotten.

Real Redis, two real workers under distinct host names, the exporter: the graceful one (SIGTERM,
warm shutdown, worker-offline) must leave no celery_worker_up series, so CeleryWorkerDown
(`celery_worker_up == 0`) has nothing to fire on; the SIGKILLed one must report 0 after the
worker timeout. Past EXPORTER_WORKER_FORGET_SECONDS the task series of both hosts are gone too.
With EXPORTER_MAX_TASK_NAMES=1 the second task name is served as __other__, counts exact.
"""
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import stack
from tests.support.celery import produce, scrape, start_exporter, total

pytestmark = pytest.mark.integration

FORGET_SECONDS = 8


def _hosts(samples, metric):
    """{hostname: the sum of its `metric` samples}."""
    out: dict[str, float] = {}
    for (name, labels), value in samples.items():
        if name == metric:
            out[dict(labels)["hostname"]] = out.get(dict(labels)["hostname"], 0) + value
    return out


def test_graceful_stop_drops_the_worker_at_once_sigkill_reports_it_down_and_both_are_forgotten_later(
        celery_env, var_dir, procs):
    def start(name, queue, nodename):
        proc = stack.start_celery_worker(celery_env, var_dir, name=name, queues=queue, concurrency=1,
                                         extra=["-n", nodename])
        procs.append(proc)  # stopped by the fixture even if the other one fails to start
        return proc

    with ThreadPoolExecutor(2) as pool:  # both start at once (each waits for its own "ready.")
        graceful, victim = pool.map(start, ["graceful", "victim"], ["imports", "exports"],
                                    ["graceful@leaving-host", "victim@lost-host"])
    exporter, url = start_exporter(celery_env, var_dir, EXPORTER_WORKER_TIMEOUT_SECONDS="4",
                                   EXPORTER_WORKER_FORGET_SECONDS=str(FORGET_SECONDS), EXPORTER_MAX_TASK_NAMES="1")
    procs.append(exporter)
    produce(celery_env, "tasks.ok.apply_async(queue='imports')", "tasks.ok.apply_async(queue='exports')")

    def both_up_and_counted():
        s = scrape(url)
        return (_hosts(s, "celery_worker_up") == {"leaving-host": 1, "lost-host": 1}
                and _hosts(s, "celery_task_succeeded_total") == {"leaving-host": 1, "lost-host": 1} and s)

    s = stack.wait_for(both_up_and_counted, 30, "both workers up, one task counted on each")
    one = [n for (n, labels) in s if n.startswith("celery_task_") and dict(labels).get("hostname") == "leaving-host"]
    assert len(one) == 58, sorted(one)  # series per (name, host, queue): docs/scaling.md, tests/ops/test_scrape_limits.py
    produce(celery_env, "tasks.fail.apply_async(queue='imports')")  # a second task name: beyond the cap
    s = stack.wait_for(lambda: total(x := scrape(url), "celery_task_failed_total") == 1 and x, 20,
                       "the third task failed")
    names = {dict(labels)["name"] for (name, labels) in s if name == "celery_task_started_total"}
    assert names == {"drills.ok", "__other__"}, names
    assert total(s, "celery_task_failed_total", name="__other__", exception="DrillError") == 1
    assert total(s, "django_celery_ops_cardinality_folded_total", label="name") == 1

    graceful.popen.send_signal(signal.SIGTERM)  # warm shutdown: worker-offline sent
    victim.popen.send_signal(signal.SIGKILL)  # no goodbye: silence is the only signal
    stopped = time.monotonic()
    s = stack.wait_for(lambda: "leaving-host" not in _hosts(x := scrape(url), "celery_worker_up") and x, 5,
                       "the graceful worker's up series gone", interval=0.1)
    assert set(_hosts(s, "celery_worker_up")) == {"lost-host"}  # still listed: silence is judged, not forgotten
    assert "leaving-host" not in _hosts(s, "celery_worker_tasks_active")
    assert _hosts(s, "celery_task_succeeded_total")["leaving-host"] == 1  # counts stay until the purge
    stack.wait_for(lambda: _hosts(scrape(url), "celery_worker_up") == {"lost-host": 0}, 10,
                   "the SIGKILLed worker reported down", interval=0.2)
    down_after = time.monotonic() - stopped
    assert down_after < FORGET_SECONDS, down_after  # it pages (for its `for`) before it is forgotten

    def forgotten():
        s = scrape(url)
        return not [labels for (name, labels) in s if dict(labels).get("hostname") in ("leaving-host", "lost-host")]

    stack.wait_for(forgotten, FORGET_SECONDS + 6, "both hosts' series forgotten", interval=0.2)
    s = scrape(url)
    assert total(s, "django_celery_ops_cardinality_forgotten_total", label="hostname") == 2
    assert total(s, "celery_queue_length", queue_name="imports") == 0  # the rest is still served
