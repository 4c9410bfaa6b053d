"""The exporter process: queue length on the broker, worker up/down, broker outages."""
import signal
import time

import pytest
import redis as redis_client
import requests

from tests.support import stack
from tests.support.celery import produce, scrape, start_exporter, total

pytestmark = pytest.mark.integration


def _value(url, metric, **labels):
    return total(scrape(url), metric, **labels)


def test_queue_length_sums_priority_lists_under_the_key_prefix_and_a_missing_queue_is_zero(
        celery_env, var_dir, redis, procs):
    env = {**celery_env, "CELERY_BROKER_KEY_PREFIX": "stack1:"}
    exporter, url = start_exporter(env, var_dir, EXPORTER_QUEUES="ghost")
    procs.append(exporter)
    produce(env, "for _ in range(5): tasks.ok.delay()",
            "for p in (9, 9, 9, 5, 3): tasks.ok.apply_async(priority=p)",
            "tasks.ok.apply_async(queue='imports', priority=6)")

    def lengths():
        s = scrape(url)
        return {q: total(s, "celery_queue_length", queue_name=q) for q in ("default", "imports", "exports", "ghost")}

    stack.wait_for(lambda: lengths()["default"] == 10, 15, "default queue length 10")
    assert lengths() == {"default": 10, "imports": 1, "exports": 0, "ghost": 0}
    keys = redis_client.Redis(host=stack.HOST, port=redis["port"]).keys("*default*")
    assert b"stack1:default\x06\x169" in keys and not [k for k in keys if not k.startswith(b"stack1:")]
    assert _value(url, "celery_exporter_broker_up") == 1
    assert requests.get(f"{url}/health", timeout=5).status_code == 200


def test_sigkilled_worker_is_reported_down_and_its_queues_lose_their_consumers(celery_env, var_dir, procs):
    worker = stack.start_celery_worker(celery_env, var_dir, name="victim", concurrency=2)
    procs.append(worker)
    exporter, url = start_exporter(celery_env, var_dir, EXPORTER_WORKER_TIMEOUT_SECONDS="10")
    procs.append(exporter)

    def up():
        s = scrape(url)
        return (total(s, "celery_worker_up") == 1 and total(s, "celery_worker_concurrency") == 2
                and total(s, "celery_active_consumer_count", queue_name="default") == 1 and s)

    s = stack.wait_for(up, 20, "worker up with its pool and queues")
    assert total(s, "celery_active_process_count", queue_name="imports") == 2
    assert total(s, "celery_active_worker_count", queue_name="exports") == 1

    worker.popen.send_signal(signal.SIGKILL)  # the main process: no worker-offline event is sent
    killed = time.monotonic()
    stack.wait_for(lambda: _value(url, "celery_worker_up") == 0, 60, "worker reported down after SIGKILL",
                   interval=0.1)
    down_after = time.monotonic() - killed
    s = scrape(url)
    assert total(s, "celery_active_consumer_count", queue_name="default") == 0
    assert total(s, "celery_worker_tasks_active") == 0
    # Down once no heartbeat came for EXPORTER_WORKER_TIMEOUT_SECONDS (10 s): the last one came at most one
    # heartbeat interval (2 s) before the kill, so not before 8 s (no false "down"), and not much after 10 s.
    assert 10 - 2 - 0.5 <= down_after <= 10 + 3, down_after


def test_exporter_survives_a_redis_restart_and_reports_the_broker_down_meanwhile(
        celery_env, var_dir, redis, procs):
    worker = stack.start_celery_worker(celery_env, var_dir, concurrency=1)
    procs.append(worker)
    exporter, url = start_exporter(celery_env, var_dir)
    procs.append(exporter)
    stack.wait_for(lambda: _value(url, "celery_worker_up") == 1, 20, "worker up")

    redis["proc"].stop()
    stack.wait_for(lambda: _value(url, "celery_exporter_broker_up") == 0, 15, "broker reported down")
    health = requests.get(f"{url}/health", timeout=5)
    assert health.status_code == 503 and "broker unreachable" in health.text
    time.sleep(3)  # several failed polls: the process keeps serving
    assert exporter.alive()
    assert _value(url, "celery_worker_up") == 1, "a broker outage is not a dead worker"

    restarted, _ = stack.start_redis(var_dir, port=redis["port"])
    procs.append(restarted)
    stack.wait_for(lambda: _value(url, "celery_exporter_broker_up") == 1, 30, "broker back up")
    assert requests.get(f"{url}/health", timeout=5).status_code == 200
    produce(celery_env, "tasks.ok.delay()")
    stack.wait_for(lambda: _value(url, "celery_task_succeeded_total", name="drills.ok") == 1, 60,
                   "a task after the restart is counted")
    stack.wait_for(lambda: _value(url, "celery_worker_up") == 1, 30, "worker up after the restart")
    assert "broker" in exporter.log() and "unreachable" in exporter.log()


def test_bad_broker_url_is_logged_reported_on_health_and_retried(celery_env, var_dir, procs):
    env = {**celery_env, "CELERY_BROKER_URL": f"redis://{stack.HOST}:{stack.free_port()}/0"}
    exporter, url = start_exporter(env, var_dir)
    procs.append(exporter)
    stack.wait_for(lambda: requests.get(f"{url}/health", timeout=5).status_code == 503, 15, "health 503")
    assert "broker unreachable" in requests.get(f"{url}/health", timeout=5).text
    assert _value(url, "celery_exporter_broker_up") == 0
    time.sleep(2.5)
    assert exporter.alive()
    assert "unreachable, retrying every" in exporter.log()

    env = {**celery_env, "CELERY_BROKER_URL": "nosuchtransport://x/"}
    exporter, url = start_exporter(env, var_dir)
    procs.append(exporter)
    stack.wait_for(lambda: requests.get(f"{url}/health", timeout=5).status_code == 503, 15, "health 503")
    assert exporter.alive()
    assert "unusable broker URL" in exporter.log() or "unreachable" in exporter.log()
