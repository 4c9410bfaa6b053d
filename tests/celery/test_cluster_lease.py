"""Cluster-level gauges come from one exporter however many run: the lease in the broker.

Two (then three) real exporters on one real broker, Redis and RabbitMQ: exactly one reports
the queue and worker gauges, so sum() over all exporters equals one exporter's value; when the
holder is SIGKILLed another takes over within the lease time, and a holder stopped cleanly
(SIGTERM) hands over at once.
"""
import signal
import socket
import time

import pytest
import redis as redis_client

from tests.support import rabbitmq, stack
from tests.support.celery import produce, scrape, start_exporter, total

pytestmark = pytest.mark.integration

CLUSTER = ("celery_queue_length", "celery_active_consumer_count", "celery_active_worker_count",
           "celery_active_process_count", "celery_worker_up", "celery_worker_tasks_active",
           "celery_worker_concurrency")
LEASE_SECONDS, POLL_SECONDS = 6, 0.5
LEASE = {"EXPORTER_LEASE_SECONDS": str(LEASE_SECONDS), "EXPORTER_POLL_SECONDS": str(POLL_SECONDS)}


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_env(request, var_dir, metrics_dir, procs):
    if request.param == "redis":
        redis = request.getfixturevalue("redis")
        url = redis["url"]
    else:
        if not rabbitmq.available():
            pytest.skip("rabbitmq-server is not installed")
        started, url = rabbitmq.start_rabbitmq(var_dir)
        procs.extend(started)
    return stack.app_env(var_dir, url, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))


def _cluster(samples) -> dict:
    return {(n, lab): v for (n, lab), v in samples.items() if n in CLUSTER}


def _leaders(urls) -> list[str]:
    return [u for u in urls if total(scrape(u), "celery_exporter_cluster_metrics") == 1]


def _expected(s) -> bool:
    host = socket.gethostname()
    return (total(s, "celery_queue_length", queue_name="imports") == 4
            and total(s, "celery_worker_up", hostname=host) == 1
            and total(s, "celery_worker_concurrency", hostname=host) == 2
            and total(s, "celery_active_worker_count", queue_name="default") == 1)


def _one_reports(urls) -> dict:
    """Scrape every exporter: never two leaders, the others report no cluster gauge; the leader's scrape.

    {} while none leads (a failover's gap: no data, never double data).
    """
    scrapes = {u: scrape(u) for u in urls}
    leaders = [u for u, s in scrapes.items() if total(s, "celery_exporter_cluster_metrics") == 1]
    assert len(leaders) <= 1, leaders
    for u, s in scrapes.items():
        if u not in leaders:
            assert _cluster(s) == {}, (u, _cluster(s))
    # sum() over all exporters, per series, equals the one exporter's value
    summed: dict = {}
    for s in scrapes.values():
        for key, value in _cluster(s).items():
            summed[key] = summed.get(key, 0) + value
    assert summed == (_cluster(scrapes[leaders[0]]) if leaders else {})
    return scrapes[leaders[0]] if leaders else {}


def test_two_exporters_report_the_cluster_gauges_once_and_fail_over(broker_env, var_dir, procs):
    worker = stack.start_celery_worker(broker_env, var_dir, name="w1", concurrency=2, queues="default")
    procs.append(worker)
    produce(broker_env, "for _ in range(4): tasks.ok.apply_async(queue='imports')")  # nobody consumes it
    exporters = {}
    for _ in range(2):
        proc, url = start_exporter(broker_env, var_dir, **LEASE)
        procs.append(proc)
        exporters[url] = proc
    urls = list(exporters)
    stack.wait_for(lambda: len(_leaders(urls)) == 1 and _expected(_one_reports(urls)), 30,
                   "one exporter reports the cluster gauges")
    for _ in range(10):  # and it stays that way: no flapping, no double report
        assert _expected(_one_reports(urls))
        time.sleep(0.3)

    leader = _leaders(urls)[0]
    exporters[leader].popen.send_signal(signal.SIGKILL)  # no release: the lease must lapse
    killed = time.monotonic()
    survivor = [u for u in urls if u != leader]
    stack.wait_for(lambda: _expected(_one_reports(survivor)), 15, "the survivor takes the lease", interval=0.1)
    taken = time.monotonic() - killed
    assert taken <= LEASE_SECONDS + POLL_SECONDS + 2, taken  # lease time + one poll (+ scrape slack)

    proc, url = start_exporter(broker_env, var_dir, **LEASE)
    procs.append(proc)
    urls = [*survivor, url]
    stack.wait_for(lambda: _expected(_one_reports(urls)), 15, "still one leader with a new peer")
    assert _leaders(urls) == survivor
    exporters[survivor[0]].stop()  # SIGTERM: releases the lease
    stopped = time.monotonic()
    stack.wait_for(lambda: _expected(_one_reports([url])), 10, "handed over at once", interval=0.1)
    # the stop itself takes up to ~1 s; a lapsed lease would take LEASE_SECONDS (6 s) from the last renewal
    assert time.monotonic() - stopped < 3, "a clean stop hands over before the lease would lapse"


def test_cluster_metrics_always_and_never(celery_env, var_dir, procs):
    procs.append(stack.start_celery_worker(celery_env, var_dir, name="w1", concurrency=2, queues="default"))
    produce(celery_env, "for _ in range(4): tasks.ok.apply_async(queue='imports')")
    always, a = start_exporter(celery_env, var_dir, EXPORTER_CLUSTER_METRICS="always")
    never, n = start_exporter(celery_env, var_dir, EXPORTER_CLUSTER_METRICS="never")
    procs.extend([always, never])
    stack.wait_for(lambda: _expected(scrape(a)), 20, "the 'always' exporter reports")
    s = scrape(n)
    assert _cluster(s) == {} and total(s, "celery_exporter_cluster_metrics") == 0
    assert total(scrape(a), "celery_exporter_cluster_metrics") == 1


def test_a_broker_outage_keeps_the_holder_until_the_lease_runs_out(var_dir, redis, metrics_dir, procs):
    env = stack.app_env(var_dir, redis["url"], PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
                        CELERY_BROKER_KEY_PREFIX="stackL:")
    procs.append(stack.start_celery_worker(env, var_dir, name="w1", concurrency=2, queues="default"))
    produce(env, "for _ in range(4): tasks.ok.apply_async(queue='imports')")
    exporter, url = start_exporter(env, var_dir, **LEASE)
    procs.append(exporter)
    stack.wait_for(lambda: _expected(scrape(url)), 20, "the exporter holds the lease")
    client = redis_client.Redis(host=stack.HOST, port=redis["port"])
    assert client.get("stackL:django_celery_ops.exporter.cluster.app").decode().split(":")[0] == socket.gethostname()
    assert 0 < client.pttl("stackL:django_celery_ops.exporter.cluster.app") <= LEASE_SECONDS * 1000

    redis["proc"].stop()
    down = time.monotonic()
    stack.wait_for(lambda: total(scrape(url), "celery_exporter_broker_up") == 0, 10, "broker reported down")
    if time.monotonic() - down < LEASE_SECONDS - 2:
        assert _expected(scrape(url)), "the holder keeps its last values while the lease lasts"
    stack.wait_for(lambda: _cluster(scrape(url)) == {}, LEASE_SECONDS + 5, "no cluster gauges once it ran out")
    assert time.monotonic() - down >= LEASE_SECONDS - POLL_SECONDS - 1  # not before the lease ran out
    assert total(scrape(url), "celery_exporter_cluster_metrics") == 0

    restarted, _ = stack.start_redis(var_dir, port=redis["port"])
    procs.append(restarted)
    stack.wait_for(lambda: _expected(scrape(url)), 30, "the lease taken again once the broker is back")


def test_two_celery_apps_on_one_broker_database_each_hold_their_own_lease(redis):
    """The default lease key names the Celery app: two projects sharing a Redis database both
    export their cluster gauges, while two exporters of one app still share one lease."""
    from celery import Celery

    from django_celery_ops.exporter import Config, Exporter

    apps = [Celery(name, broker=redis["url"]) for name in ("shop", "blog", "shop")]
    exporters = [Exporter(app, Config(port=0, lease_seconds=30)) for app in apps]
    keys = [e.config.lease_key for e in exporters]
    assert keys == ["django_celery_ops.exporter.cluster.shop", "django_celery_ops.exporter.cluster.blog",
                    "django_celery_ops.exporter.cluster.shop"]
    from kombu import Connection

    held = []
    for exporter in exporters:  # the test environment's CELERY_BROKER_URL points elsewhere: connect explicitly
        with Connection(redis["url"]) as connection:
            held.append(exporter.lease.renew(connection))
    assert held == [True, True, False]  # shop and blog lead; the second shop exporter does not
