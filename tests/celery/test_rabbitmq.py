"""Queue length and consumers on RabbitMQ: passive queue_declare, a missing queue is 0."""
import pytest

from tests.support import rabbitmq, stack
from tests.support.celery import produce, scrape, start_exporter, total

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not rabbitmq.available(), reason="rabbitmq-server is not installed")]


def test_rabbitmq_queue_length_and_consumers(var_dir, metrics_dir, procs):
    started, url = rabbitmq.start_rabbitmq(var_dir)
    procs.extend(started)
    env = stack.app_env(var_dir, url, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    exporter, exp = start_exporter(env, var_dir, EXPORTER_QUEUES="ghost")
    procs.append(exporter)
    produce(env, "for _ in range(7): tasks.ok.delay()")

    def queues():
        s = scrape(exp)
        return {q: (total(s, "celery_queue_length", queue_name=q), total(s, "celery_active_consumer_count",
                                                                           queue_name=q))
                for q in ("default", "ghost")}

    stack.wait_for(lambda: queues()["default"] == (7, 0), 20, "7 ready messages, no consumer")
    assert queues()["ghost"] == (0, 0)
    assert total(scrape(exp), "celery_exporter_broker_up") == 1

    worker = stack.start_celery_worker(env, var_dir, concurrency=1, queues="default")
    procs.append(worker)
    stack.wait_for(lambda: queues()["default"] == (0, 1), 30, "drained, one consumer")
    stack.wait_for(lambda: total(scrape(exp), "celery_task_succeeded_total", name="drills.ok") == 7, 30,
                   "7 tasks counted")
    worker.stop()
    stack.wait_for(lambda: queues()["default"] == (0, 0), 30, "no consumer after the worker stopped")
