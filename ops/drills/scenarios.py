"""The drill catalog (docs/drills.md, "Faults"): each injects one fault; the named alerts must fire.

`tolerated` lists alerts that the fault may also fire, each because the fault really causes it
(for example, a slow view also burns the latency SLO budget); anything else that fires during a
drill is a false alert and fails it.
"""
from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ops.drills.harness import DrillFailed, Load, Stack, wait_until
from ops.drills.procs import ROOT, http

Remove = Callable[[], None]


@dataclass
class Drill:
    name: str
    fault: str
    inject: Callable[[Stack], Remove]
    expected: list[str]
    tolerated: dict[str, str] = field(default_factory=dict)  # alert -> why the fault causes it
    series: dict[str, str] = field(default_factory=dict)  # plot title -> PromQL
    fire_timeout: float = 180.0
    resolve_timeout: float = 180.0
    hold: float = 0.0  # for drills that expect nothing: how long the fault runs
    check: Callable[[Stack], str | None] | None = None  # after resolving: a problem found, or None


def _load(url: str, clients: int, pause: float = 0.0, timeout: float = 30.0) -> Callable[[Stack], Remove]:
    def inject(stack: Stack) -> Remove:
        load = Load(url.format(web=stack.url("WEB_PORT"), asgi=stack.url("ASGI_PORT"), nginx=stack.url("NGINX_PORT")),
                    clients, timeout, pause)
        return load.stop
    return inject


def _producer(query: str, every: float) -> Callable[[Stack], Remove]:
    """POST /drills/tasks/?<query> every `every` seconds until removed, then purge the drill queue."""
    def inject(stack: Stack) -> Remove:
        stop = threading.Event()
        url = f"{stack.url('WEB_PORT')}/drills/tasks/?{query}"

        def run():
            while not stop.is_set():
                status, body = http(url, b"")
                if status != 202:
                    raise DrillFailed(f"enqueueing drill tasks failed: HTTP {status} {body[:200]!r}")
                stop.wait(every)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def remove():
            stop.set()
            thread.join(15)
            http(f"{stack.url('WEB_PORT')}/drills/tasks/purge/", b"")
        return remove
    return inject


def _worker_timeout(stack: Stack) -> Remove:
    # Two requests, one after the other: each outlives GUNICORN_TIMEOUT and gets its worker killed.
    for _ in range(2):
        http(f"{stack.url('WEB_PORT')}/drills/worker-timeout/", timeout=30)
    return lambda: None


def _kill_worker(stack: Stack) -> Remove:
    import os
    import signal

    os.kill(stack.program_pid("worker"), signal.SIGKILL)  # the fault: no goodbye, no offline event
    stack.supervisorctl("stop", "worker")  # keep it down (supervisord would restart it)
    http(f"{stack.url('WEB_PORT')}/drills/tasks/?kind=ok&count=5", b"")  # work arrives, nobody takes it
    return lambda: (stack.supervisorctl("start", "worker"), None)[1]


def _stop_redis(stack: Stack) -> Remove:
    stack.supervisorctl("stop", "redis")
    return lambda: (stack.supervisorctl("start", "redis"), None)[1]


class _RedisExporterDown:
    """Stop only the Redis exporter: RedisExporterDown must fire, RedisDown must not (Redis is fine).

    Its PrometheusTargetDown is held back by the inhibition, and nothing else may be: remove()
    records what Alertmanager inhibits while the exporter is still down, check() names anything
    but that PrometheusTargetDown (runbooks/RedisExporterDown.md).
    """

    def __init__(self):
        self.inhibited: list[dict] = []

    def inject(self, stack: Stack) -> Remove:
        self.inhibited = []
        stack.supervisorctl("stop", "redis-exporter")

        def inhibited():
            status, body = http(stack.url("ALERTMANAGER_PORT") + "/api/v2/alerts?inhibited=true")
            alerts = json.loads(body) if status == 200 else []
            sources = {a["fingerprint"] for a in alerts if a["labels"].get("alertname") == "RedisExporterDown"}
            # what RedisExporterDown holds back (other inhibitions, e.g. a page over its ticket, are not its)
            self.inhibited = [a["labels"] for a in alerts if sources & set(a["status"].get("inhibitedBy") or [])]
            return any(a.get("alertname") == "PrometheusTargetDown" for a in self.inhibited)

        def remove():
            try:  # hold the fault until the target alert fired and was held back (or 40 s)
                wait_until(inhibited, 40, "PrometheusTargetDown of the Redis exporter to be inhibited")
            except DrillFailed:
                pass  # check() reports it
            finally:
                stack.supervisorctl("start", "redis-exporter")
        return remove

    def check(self, stack: Stack) -> str | None:
        others = [a for a in self.inhibited
                  if not (a.get("alertname") == "PrometheusTargetDown" and a.get("job") == "redis")]
        if others:
            return f"RedisExporterDown muted more than its own target: {others}"
        if not self.inhibited:
            return "the Redis exporter's PrometheusTargetDown was never held back by RedisExporterDown"
        return None


class _GracefulWorkerRestart:
    """A temporary worker (the backlog runbook's `worker2`, a redeploy under a new name) starts,
    is seen up, then stops with a warm shutdown (SIGTERM) and never comes back: nothing may fire.
    The exporter forgets a worker that said goodbye (worker-offline).
    """

    HOSTNAME = "drill-temp"  # the host part of its node name (worker2@drill-temp) is the hostname label
    WATCH_SECONDS = 15.0

    def __init__(self):
        self.proc: subprocess.Popen | None = None

    def inject(self, stack: Stack) -> Remove:
        command = ("source scripts/stack-env.sh && source scripts/stack-secrets.sh && exec env "
                   "PROMETHEUS_MULTIPROC_DIR=$CELERY_METRICS_DIR celery -A app worker -Q default -c 1 "
                   f"-n worker2@{self.HOSTNAME} -E --loglevel WARNING")
        log = (stack.var_dir / "log" / "drill-temp-worker.log").open("ab")
        self.proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=stack.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(lambda: stack.query(f'celery_worker_up{{hostname="{self.HOSTNAME}"}} == 1'), 60,
                       "the temporary worker to be seen up by the exporter")
        finally:
            self.proc.send_signal(signal.SIGTERM)  # warm shutdown: finish, say goodbye, exit
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                raise DrillFailed("the temporary worker did not stop within 30 s of SIGTERM") from None
            finally:
                log.close()
        stopped_at = time.monotonic()
        # Keep watching past CeleryWorkerDown's compressed for: (3m / 20 = 9 s) after the stop: a worker
        # left at 0 would fire by then, and the resolve check after removal sees it as unexpected.
        return lambda: time.sleep(max(0.0, stopped_at + self.WATCH_SECONDS - time.monotonic()))

    def check(self, stack: Stack) -> str | None:
        left = stack.query(f'celery_worker_up{{hostname="{self.HOSTNAME}"}}')
        return f"the exporter still reports the gracefully stopped worker: {left}" if left else None


_REDIS_EXPORTER_DOWN = _RedisExporterDown()
_GRACEFUL_WORKER_RESTART = _GracefulWorkerRestart()


# --- proxy drills (nginx in front of both tiers, docs/proxy.md) ------------------------------

def _staggered_nginx_load(port_var: str, path: str, clients: int, every: float):
    """Closed-loop clients through nginx, started `every` seconds apart, so their answers spread out.

    A counter series that appears with its first increment (mtail's 504 series, the first
    time) shows no rate until a second increment: spread 504s reach the alert sooner.
    """
    def inject(stack: Stack) -> Remove:
        loads = []
        for n in range(clients):
            if n:
                time.sleep(every)
            loads.append(Load(stack.url(port_var) + path, 1, 30.0))

        def remove():
            for load in loads:
                load.stop()
        return remove
    return inject


def _gunicorn_down(stack: Stack) -> Remove:
    """Stop the WSGI tier's gunicorn (nginx, web-metrics and the traffic stay), at once.

    `supervisorctl stop` sends TERM: gunicorn's graceful shutdown, which serves on for up to
    GUNICORN_GRACEFUL_TIMEOUT (30 s). Once supervisord is stopping it (no restart then), QUIT,
    gunicorn's quick shutdown, ends the master and its workers now.
    """
    import os
    import signal

    master = stack.program_pid("web")
    stopper = threading.Thread(target=stack.supervisorctl, args=("stop", "web"), daemon=True)
    stopper.start()
    wait_until(lambda: "STOPPING" in stack.supervisorctl("status", "web") or not stopper.is_alive(), 15,
               "supervisord to be stopping web", interval=0.2)
    try:
        os.kill(master, signal.SIGQUIT)
    except ProcessLookupError:
        pass
    stopper.join(60)
    load = Load(stack.url("NGINX_PORT") + "/healthz", clients=1, pause=0.2, timeout=10)  # users keep coming
    return lambda: (load.stop(), stack.supervisorctl("start", "web"), None)[-1]


def _metric_sum(stack: Stack, expr: str) -> float:
    result = stack.query(expr)
    return float(result[0]["value"][1]) if result else 0.0


_TIMEOUTS = 'sum(gunicorn_worker_timeouts_total{job="django-wsgi"}) or vector(0)'


class _SlowClients:
    """4 x capacity + 6 sockets, each sending a partial request line and a byte every 2 s, reconnecting when closed.

    The case of issue 13: without a proxy every sync worker blocks reading a request that never
    completes, and gunicorn kills them all at its timeout. `port_var` picks the front: NGINX_PORT
    (nginx buffers the request: gunicorn must see nothing) or WEB_PORT (gunicorn directly).
    While the fault runs, a probe asks /healthz through nginx every second: the workers must stay
    free (answers within 2 s) when nginx is in front.
    """

    TRICKLE_SECONDS = 2.0

    def __init__(self, port_var: str, hold: float):
        self.port_var, self.hold = port_var, hold
        self.timeouts_before = 0.0
        self.connections = 0
        self.probes: list[float | None] = []  # seconds per /healthz probe through nginx, None = failed

    def _client(self, port: int, stop: threading.Event) -> None:
        import socket

        while not stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                    self.connections += 1
                    sock.sendall(b"GET /healthz?slow-client=")
                    while not stop.wait(self.TRICKLE_SECONDS):
                        sock.sendall(b"x")
            except OSError:
                stop.wait(0.2)  # closed by the server (nginx's client_header_timeout, a killed worker)

    def _probe(self, stack: Stack, stop: threading.Event) -> None:
        import time

        while not stop.wait(1.0):
            started = time.monotonic()
            try:
                status, _ = http(stack.url("NGINX_PORT") + "/healthz", timeout=5)
                self.probes.append(time.monotonic() - started if status == 200 else None)
            except OSError:
                self.probes.append(None)

    def inject(self, stack: Stack) -> Remove:
        self.timeouts_before = _metric_sum(stack, _TIMEOUTS)
        self.connections, self.probes = 0, []
        capacity = int(stack.env.get("GUNICORN_WORKERS", "2")) * int(stack.env.get("GUNICORN_THREADS", "1"))
        stop = threading.Event()
        port = int(stack.env[self.port_var])
        threads = [threading.Thread(target=self._client, args=(port, stop), daemon=True)
                   for _ in range(4 * capacity + 6)]
        threads.append(threading.Thread(target=self._probe, args=(stack, stop), daemon=True))
        for thread in threads:
            thread.start()

        def remove():
            stop.set()
            for thread in threads:
                thread.join(10)
        return remove

    def check(self, stack: Stack) -> str | None:
        """With nginx in front: no worker timeout, every probe answered quickly."""
        timeouts = _metric_sum(stack, _TIMEOUTS) - self.timeouts_before
        slow = [p for p in self.probes if p is None or p > 2.0]
        summary = (f"{timeouts:.0f} gunicorn worker timeouts, {self.connections} slow connections, "
                   f"{len(slow)} of {len(self.probes)} probes through nginx failed or took > 2 s")
        print(f"drills: {'slow-clients' if self.port_var == 'NGINX_PORT' else 'slow-clients-direct'}: {summary}",
              flush=True)
        if self.port_var == "NGINX_PORT" and (timeouts or slow or not self.probes):
            return summary
        if self.port_var == "WEB_PORT" and not timeouts:
            return "without the proxy gunicorn should have killed workers: " + summary
        return None


_SLOW_CLIENTS = _SlowClients("NGINX_PORT", hold=20.0)
_SLOW_CLIENTS_DIRECT = _SlowClients("WEB_PORT", hold=0.0)


# --- jobs drills ---------------------------------------------------------------------------

def _multipart(csv_bytes: bytes) -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"drill.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode() + csv_bytes + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def _good_csv(rows: int = 20) -> bytes:
    return ("id,value,label\n" + "".join(f"{i},{i * 0.5:.1f},name{i % 7}\n" for i in range(rows))).encode()


def _poison_csv() -> bytes:
    """A CSV whose first 64 KiB are clean (what the request parses) and whose row 4,001 has 2 fields.

    The request's cheap check passes it (202); the task's full parse fails it, every time, with
    JobInputInvalid: no retry can help, so each upload is one failed task.
    """
    good = "".join(f"{i},{i * 0.25:.2f},label-{i % 13:02d}\n" for i in range(4000))  # ~86 KB
    return ("id,value,label\n" + good + "4000,broken\n" + "4001,1.00,label-00\n").encode()


def _upload(stack: Stack, csv_bytes: bytes) -> str:
    body, headers = _multipart(csv_bytes)
    status, answer = stack.api("/api/imports/", body, headers)
    if status != 202:
        raise DrillFailed(f"upload not accepted: HTTP {status} {answer[:200]!r}")
    return str(json.loads(answer)["id"])


def _uploads_every(every: float, csv_bytes: bytes) -> Callable[[Stack], Remove]:
    """POST the CSV to /api/imports/ every `every` seconds until removed; each must be accepted."""
    def inject(stack: Stack) -> Remove:
        stop = threading.Event()

        def run():
            while not stop.is_set():
                _upload(stack, csv_bytes)
                stop.wait(every)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return lambda: (stop.set(), thread.join(15), None)[-1]
    return inject


def _hex(job_id: str) -> str:
    return uuid.UUID(job_id).hex  # Django stores a UUIDField as 32 hex digits in SQLite


def _jobs_done_once(stack: Stack, ids: list[str], timeout: float = 120.0) -> str | None:
    """Wait until every job succeeded; then check, in the database, that each has one success."""
    marks = ",".join("?" * len(ids))

    def rows():
        return stack.db(f"SELECT id, state, attempts, history, result_file FROM jobs_job WHERE id IN ({marks})",
                        tuple(_hex(i) for i in ids))
    try:
        wait_until(lambda: (found := rows()) and len(found) == len(ids)
                   and all(r[1] == "succeeded" for r in found), timeout, f"{len(ids)} drill jobs to succeed")
    except DrillFailed:
        states = sorted(r[1] for r in rows())
        return f"not every accepted job succeeded: {len(ids)} accepted, states {states}"
    problems = []
    for job_id, _state, attempts, history, result in rows():
        successes = sum(1 for event in json.loads(history) if event.get("state") == "succeeded")
        if successes != 1 or not result:
            problems.append(f"{job_id}: {successes} successes, result {result!r}, {attempts} attempts")
    return "; ".join(problems) or None


class _SweeperDown:
    """Stop the sweeper, stop Redis, accept uploads into the outbox, bring Redis back; the sweeper stays down.

    RedisDown pages during the outage (and holds JobsOutboxStalled back); once Redis is back the
    outbox still does not drain, and JobsOutboxStalled must page on its own. Removing the fault
    starts the sweeper; check() then asserts against the database that every job accepted
    during the outage succeeded exactly once.
    """

    UPLOADS = 8
    OUTAGE_SECONDS = 20.0

    def __init__(self):
        self.ids: list[str] = []

    def inject(self, stack: Stack) -> Remove:
        self.ids = []
        stack.supervisorctl("stop", "sweeper")
        stack.supervisorctl("stop", "redis")
        for _ in range(self.UPLOADS):
            self.ids.append(_upload(stack, _good_csv()))  # 202: stored, the publish waits in the outbox
        timer = threading.Timer(self.OUTAGE_SECONDS, stack.supervisorctl, ("start", "redis"))
        timer.start()

        def remove():
            timer.cancel()
            stack.supervisorctl("start", "redis")  # no-op when already back
            stack.supervisorctl("start", "sweeper")
        return remove

    def check(self, stack: Stack) -> str | None:
        return _jobs_done_once(stack, self.ids)


class _LostMessage:
    """Delete a queued job's message from Redis (what an fsync-once-a-second crash can lose).

    The workers stop consuming `imports` for the second it takes (cancel_consumer, not a stopped
    worker), the message is removed with LREM, consuming resumes. The job stays `queued` with no
    message: JobsStuck fires once it is past JOBS_DEADLINE_QUEUED_SECONDS, then the sweeper
    re-publishes it after JOBS_REQUEUE_LOST_AFTER_SECONDS and it completes.
    """

    def __init__(self):
        self.job_id = ""

    def _consumer(self, stack: Stack, action: str) -> None:
        status, body = http(f"{stack.url('WEB_PORT')}/drills/consumer/?queue=imports&action={action}", b"")
        if status != 200:
            raise DrillFailed(f"consumer {action}: HTTP {status} {body[:200]!r}")

    def inject(self, stack: Stack) -> Remove:
        import redis

        client = redis.Redis(host="127.0.0.1", port=int(stack.env["REDIS_PORT"]))
        self._consumer(stack, "cancel")
        try:
            self.job_id = _upload(stack, _good_csv())
            message = wait_until(
                lambda: next((m for m in client.lrange("imports", 0, -1) if self.job_id.encode() in m), None),
                15, f"the message of job {self.job_id} in the imports queue", interval=0.2)
            if client.lrem("imports", 1, message) != 1:
                raise DrillFailed(f"could not remove the message of job {self.job_id}")
        finally:
            self._consumer(stack, "add")
        return lambda: None  # the sweeper's recovery is what the drill checks

    def check(self, stack: Stack) -> str | None:
        problem = _jobs_done_once(stack, [self.job_id], timeout=60)
        republished = stack.query('sum(jobs_republished_total{reason="lost_message"})')
        if not problem and not (republished and float(republished[0]["value"][1]) >= 1):
            problem = "the job completed, but jobs_republished_total{reason=\"lost_message\"} did not count it"
        return problem


_SWEEPER_DOWN = _SweeperDown()
_LOST_MESSAGE = _LostMessage()

_CELERY_BECAUSE_BROKER = "without the broker the exporter sees no worker and no consumer (Alertmanager inhibits it)"

# Web and Celery drills alternate, so that one drill's slow SLO burn fades during the next.
_ORDER = ["slow-view", "task-backlog", "cpu-view", "task-failures", "blocking-async", "task-time-limit",
          "sync-export", "retry-storm", "sync-export-offloaded", "server-errors", "worker-timeout", "db-errors",
          "poison-upload", "lost-message", "worker-down", "redis-exporter-down", "worker-graceful-restart",
          "broker-down", "sweeper-down",
          "gunicorn-down", "slow-upstream", "slow-clients", "slow-clients-direct", "queue-time"]
_RATE_LIMIT_CACHE = ("the API rate limiter keeps its counts in the broker's Redis: while Redis is down each API "
                     "request counts an instrumentation failure at stage rate_limit (and is served)")
# Measured: an upload during the outage answers 202 after 6 s, because kombu retries the broker
# connection (default max_retries) before apply_async(retry=False) gives up; with the transport
# option max_retries=0 on the request's publish it gives up in 0.1 s and these two go away.
_PUBLISH_WAITS = ("each upload accepted during the broker outage waits 6 s on the request-time publish "
                  "(kombu's connection retries) before the outbox takes it")
_TIMEOUTS_FAIL = "the availability SLI counts each gunicorn worker timeout as a failed request"
_STUCK_IN_QUEUED = "jobs accepted during the fault wait in queued past the drills' 45 s deadline"

_CATALOG: dict[str, Drill] = {d.name: d for d in [
    Drill("slow-view", "time.sleep(3) inside a sync view, 8 clients on 2 workers",
          _load("{web}/drills/slow-view/?seconds=3", clients=8),
          ["DjangoSlowRequests", "GunicornWorkersSaturated", "GunicornRequestsQueued"],
          {"DjangoLatencyBudgetBurn": "every request of the tier is slow or waits: the latency budget burns"},
          {"saturation (busy / capacity)": 'instance:gunicorn_saturation:ratio{job="django-wsgi"}',
           "listen backlog": 'gunicorn_listen_backlog{job="django-wsgi"}'}),
    Drill("cpu-view", "a CPU-bound loop of 1.2 s inside a view",
          _load("{web}/drills/cpu-view/?seconds=1.2", clients=1, pause=0.2),
          ["DjangoSlowRequests"],
          {"DjangoLatencyBudgetBurn": "the slow requests spend the latency budget"},
          {"share of slow requests by view": "view:django_http_slow_requests:ratio_rate5m"}),
    Drill("blocking-async", "time.sleep(0.6) inside an async view (ASGI)",
          _load("{asgi}/drills/blocking-async/?seconds=0.6", clients=1, pause=0.3),
          ["DjangoEventLoopBlocked"],
          {"DjangoSlowRequests": "requests queued behind the blocked loop get slow too",
           "DjangoLatencyBudgetBurn": "requests queued behind the blocked loop get slow too"},
          {"event-loop lag p99 (s)": "histogram_quantile(0.99, sum by (le) "
                                      "(rate(django_asgi_event_loop_lag_seconds_bucket[15s])))"}),
    Drill("sync-export", "a 1.5 s report export built inside the request",
          _load("{web}/drills/sync-export/?seconds=1.5", clients=1, pause=0.5),
          ["DjangoSlowRequests"],
          {"DjangoLatencyBudgetBurn": "the slow requests spend the latency budget"},
          {"share of slow requests by view": "view:django_http_slow_requests:ratio_rate5m"}),
    Drill("sync-export-offloaded", "the same export queued to Celery (the fix): must fire nothing",
          _load("{web}/drills/offloaded-export/", clients=1, pause=0.5),
          [], {}, {"share of slow requests by view": "view:django_http_slow_requests:ratio_rate5m"}, hold=45),
    # An unhandled exception in a view, for the 5xx and availability side.
    Drill("server-errors", "a view raising an unhandled exception (500) at 5 requests per second",
          _load("{web}/drills/error/", clients=1, pause=0.2),
          ["DjangoHighServerErrorRate"],
          {"DjangoAvailabilityBudgetBurn": "the 500s spend the availability budget"},
          {"5xx ratio by view": "view:django_http_server_errors:ratio_rate5m"}),
    Drill("worker-timeout", "two requests sleep past GUNICORN_TIMEOUT (6 s in drills)",
          _worker_timeout, ["GunicornWorkerTimeouts"],
          {"DjangoAvailabilityBudgetBurn": _TIMEOUTS_FAIL},
          {"worker timeouts": 'sum(gunicorn_worker_timeouts_total{job="django-wsgi"})'}),
    Drill("task-backlog", "3 tasks of 2 s each per second on a pool of 2",
          _producer("kind=busy&seconds=2&count=3", every=1.0),
          ["CeleryQueueBacklog", "CeleryWorkersSaturated", "CeleryTaskQueueWaitHigh"],
          {"JobsStuck": "background uploads queue behind the busy pool past the drills' 45 s queued deadline"},
          {"queue length": 'celery_queue_length{queue_name="default"}',
           "mean queue wait (s)": "queue_name:celery_task_queue_wait_seconds:mean5m"},
          fire_timeout=300),
    Drill("task-failures", "a task that always fails, 2 per second",
          _producer("kind=fail&count=2", every=1.0), ["CeleryTaskFailureRateHigh"], {},
          {"failure ratio by task": "name:celery_task_failures:ratio_rate5m"}),
    Drill("task-time-limit", "tasks that run past their soft and hard time limits",
          _producer("kind=sleep&seconds=3&ignore_soft_limit=1&count=1", every=3.0),
          ["CeleryTaskTimeLimitExceeded"],
          {"CeleryTaskFailureRateHigh": "a task stopped by its time limit fails"},
          {"time-limit hits": "sum by (limit) (celery_task_time_limit_exceeded_total)"}),
    Drill("retry-storm", "a task retrying 30 times with countdown 0 (no backoff)",
          _producer("kind=retry&times=30&count=1", every=1.0), ["CeleryTaskRetryStorm"], {},
          {"retry ratio by task": "name:celery_task_retries:ratio_rate5m"}),
    Drill("worker-down", "the Celery worker is SIGKILLed and stays down",
          _kill_worker, ["CeleryWorkerDown", "CeleryQueueNoConsumers"], {"JobsStuck": _STUCK_IN_QUEUED},
          {"workers up": "celery_worker_up", "queue length": "celery_queue_length"}),
    Drill("redis-exporter-down", "only the Redis exporter is stopped; Redis and everything else keep working",
          _REDIS_EXPORTER_DOWN.inject, ["RedisExporterDown"],
          {"PrometheusTargetDown": "the exporter's target is down (inhibited by RedisExporterDown, the only one)"},
          {"redis exporter up": 'up{job="redis"}', "broker up (Celery exporter)": "celery_exporter_broker_up"},
          fire_timeout=60, resolve_timeout=60, check=_REDIS_EXPORTER_DOWN.check),
    Drill("worker-graceful-restart", "a temporary worker is seen up, then stopped with a warm shutdown "
          "(SIGTERM) and never comes back: must fire nothing",
          _GRACEFUL_WORKER_RESTART.inject, [], {}, {"workers up": "celery_worker_up"}, hold=5,
          check=_GRACEFUL_WORKER_RESTART.check),
    Drill("broker-down", "Redis is stopped",
          _stop_redis, ["RedisDown"],
          {"CeleryWorkerDown": _CELERY_BECAUSE_BROKER, "CeleryQueueNoConsumers": _CELERY_BECAUSE_BROKER,
           "DjangoInstrumentationErrors": _RATE_LIMIT_CACHE, "JobsStuck": _STUCK_IN_QUEUED},
          {"redis up": "redis_up"}),
    Drill("db-errors", "a view whose query the database refuses (a dropped table), 2 requests per second",
          _load("{web}/drills/db-errors/", clients=1, pause=0.5),
          ["DjangoDatabaseErrors"],
          {"DjangoHighServerErrorRate": "every refused query is a 500 of that view",
           "DjangoAvailabilityBudgetBurn": "the 500s spend the availability budget"},
          {"database errors per second": "alias:django_db_errors:rate5m",
           "5xx ratio by view": "view:django_http_server_errors:ratio_rate5m"}),
    Drill("poison-upload", "a CSV clean in its first 64 KiB, malformed at row 4,001: accepted (202), "
          "failed by the task every time, one upload per second",
          _uploads_every(1.0, _poison_csv()),
          ["CeleryTaskFailureRateHigh"], {},
          {"failure ratio by task": "name:celery_task_failures:ratio_rate5m",
           "failed imports by exception": 'sum by (exception) (celery_task_failed_total{name="jobs.process_import"})'}),
    Drill("lost-message", "a queued job's message is deleted from Redis; the sweeper must re-publish it",
          _LOST_MESSAGE.inject, ["JobsStuck"], {},
          {"oldest queued job (s)": 'state:jobs_oldest_age_seconds:max{state="queued"}',
           "lost messages re-published": 'sum(jobs_republished_total{reason="lost_message"})'},
          fire_timeout=150, check=_LOST_MESSAGE.check),
    Drill("sweeper-down", f"the outbox sweeper is stopped, then Redis while {_SweeperDown.UPLOADS} uploads are "
          f"accepted and {_SweeperDown.OUTAGE_SECONDS:.0f} s more; Redis returns, the sweeper stays down",
          _SWEEPER_DOWN.inject, ["JobsOutboxStalled"],
          {"RedisDown": "the fault includes the broker outage",
           "CeleryWorkerDown": _CELERY_BECAUSE_BROKER, "CeleryQueueNoConsumers": _CELERY_BECAUSE_BROKER,
           "DjangoInstrumentationErrors": _RATE_LIMIT_CACHE, "JobsStuck": _STUCK_IN_QUEUED,
           "DjangoSlowRequests": _PUBLISH_WAITS, "DjangoLatencyBudgetBurn": _PUBLISH_WAITS},
          {"outbox and sweeper heartbeat age (s)": "job:jobs_outbox_oldest_age_seconds:max "
                                                   "or job:jobs_sweeper_heartbeat_age_seconds:max",
           "redis up": "redis_up"},
          fire_timeout=240, check=_SWEEPER_DOWN.check),
    # --- the proxy tier (nginx in front of both web tiers; docs/proxy.md)
    Drill("gunicorn-down", "the WSGI tier (gunicorn) is stopped behind nginx; users keep coming",
          _gunicorn_down, ["NginxUpstreamErrors"],
          {"DjangoLatencyBudgetBurn": "the restarted tier's first requests run on cold workers (imports, "
                                      "connections) and are slow, among few requests"},
          {"502/503/504 share by upstream": "upstream:nginx_http_upstream_errors:ratio_rate5m",
           "responses by status": 'sum by (status) (rate(nginx_http_responses_total{upstream="wsgi"}[15s]))'}),
    Drill("slow-upstream", "an async view waiting 20 s, past nginx's 12 s read timeout (504), 4 clients 3 s apart",
          _staggered_nginx_load("NGINX_ASGI_PORT", "/drills/nonblocking-async/?seconds=20", clients=4, every=3),
          ["NginxUpstreamErrors"],
          {"DjangoSlowRequests": "the 20 s views finish after nginx gave up: Django counts them slow",
           "DjangoLatencyBudgetBurn": "the 20 s views spend the ASGI tier's latency budget"},
          {"502/503/504 share by upstream": "upstream:nginx_http_upstream_errors:ratio_rate5m",
           "504s per second": 'sum(rate(nginx_http_responses_total{status="504"}[15s]))'}),
    Drill("slow-clients", f"4 x capacity + 6 sockets send partial request lines to nginx for {_SLOW_CLIENTS.hold:.0f} s: "
          "nginx buffers them, gunicorn must see no timeout and its workers stay free",
          _SLOW_CLIENTS.inject, [], {},
          {"gunicorn worker timeouts": _TIMEOUTS,
           "nginx connections reading": 'sum(nginx_connections_reading{job="nginx"})'},
          hold=_SLOW_CLIENTS.hold, check=_SLOW_CLIENTS.check),
    Drill("slow-clients-direct", "the same slow clients sent to gunicorn directly (no proxy): every worker "
          "blocks reading and gunicorn kills it at its timeout",
          _SLOW_CLIENTS_DIRECT.inject, ["GunicornWorkerTimeouts"],
          {"GunicornRequestsQueued": "requests wait in the backlog while every worker reads a slow client",
           "DjangoAvailabilityBudgetBurn": _TIMEOUTS_FAIL},
          {"gunicorn worker timeouts": _TIMEOUTS,
           "listen backlog": 'gunicorn_listen_backlog{job="django-wsgi"}'},
          check=_SLOW_CLIENTS_DIRECT.check),
    Drill("queue-time", "0.5 s views, 5 clients through nginx on 2 sync workers: requests wait for a worker",
          _load("{nginx}/drills/slow-view/?seconds=0.5", clients=5),
          ["RequestQueueTimeHigh"],
          {"GunicornWorkersSaturated": "the fault is saturation: every worker is busy",
           "GunicornRequestsQueued": "the waiting requests sit in gunicorn's listen backlog"},
          {"share of requests queued > 0.25 s": "job:django_http_request_queue_slow:ratio_rate5m",
           "queue time p90 (s)": "histogram_quantile(0.9, sum by (job, le) "
                                 "(rate(django_http_request_queue_seconds_bucket[15s])))"}),
]}
DRILLS: dict[str, Drill] = {name: _CATALOG[name] for name in _ORDER}

# The catalog on two stacks at once (ops/drills/lanes.py, the tests), each lane a run of _ORDER
# as it is, so that what a drill leaves fading (a slow SLO burn) meets the drill that met it in
# _ORDER, and the two lanes about equally long (measured, docs/drills.md "Run time"). The one new
# neighbour: slow-upstream follows task-time-limit (which leaves at most its tolerated
# CeleryTaskFailureRateHigh, a 15 s window, gone during its 30 s resolve).
LANES: list[list[str]] = [
    ["slow-view", "task-backlog", "cpu-view", "task-failures", "blocking-async", "task-time-limit",
     "slow-upstream", "slow-clients", "slow-clients-direct", "queue-time"],
    ["sync-export", "retry-storm", "sync-export-offloaded", "server-errors", "worker-timeout", "db-errors",
     "poison-upload", "lost-message", "worker-down", "redis-exporter-down", "worker-graceful-restart",
     "broker-down", "sweeper-down", "gunicorn-down"],
]
