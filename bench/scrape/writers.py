"""Fill a multiprocess folder the way real writer processes do, with the library's slot storage.

    python -m bench.scrape.writers web DIR --views V --workers W
    python -m bench.scrape.writers exporter DIR --names N --nodes K --procs P

web: a parent loads Django (settings bench.scrape.settings_views: V trivial views) once, then
forks W worker processes, two at a time; each takes a slot of its own (multiprocess.setup) and
sends one GET to every view through the WSGI handler and the whole middleware stack, so the
request families are written by the real RequestMiddleware. Expected: every view's
django_http_responses_total_by_status_view_method{status="200",method="GET"} equals W.

exporter: K nodes of P processes each (1 worker main process + P-1 pool children), forked two
at a time. The main process counts `received` through celery_metrics' task_received receiver,
each child runs every task name once through the task_prerun/task_success/task_postrun
receivers (with the producer's published_at header, so the queue-wait histogram fills as in
production): the real metric objects, the real zero-initialised states. Expected: for every
(name, hostname) received = started = succeeded = P-1.

Each process takes a slot under a role of its own (`w007`, `n012-main`, `n012-c1`), so that
processes can run one after another and still keep one slot each, as live processes do; the
readers do not depend on slot names. Prints a JSON line with what was written.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time


def _fork_all(jobs, concurrency: int = 2) -> None:
    """Run each job (a callable) in a forked child, `concurrency` at a time; fail if any child fails."""
    running: set[int] = set()
    failed = []

    def reap():
        pid, status = os.wait()
        running.discard(pid)
        if status != 0:
            failed.append(status)

    for job in jobs:
        while len(running) >= concurrency:
            reap()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                job()
            except BaseException:  # noqa: BLE001 - report and exit non-zero
                import traceback

                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        running.add(pid)
    while running:
        reap()
    if failed:
        raise SystemExit(f"{len(failed)} writer processes failed")


def web(directory: str, views: int, workers: int, first: int = 0) -> dict:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    os.environ["SCRAPE_VIEWS"] = str(views)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.scrape.settings_views"
    os.environ.setdefault("DJANGO_ENV", "test")  # no secrets needed; the middleware stack is the production one
    import django_celery_ops  # noqa: F401 - installs the slot storage before any metric exists
    from django_celery_ops import multiprocess

    multiprocess.setup("parent")  # what the parent's import creates lands in a slot of its own
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()

    def start_response(status, headers, exc_info=None):
        assert status.startswith("200"), status

    def worker(i: int):
        def run():
            multiprocess.setup(f"w{i:03d}")
            for v in range(views):
                environ = {"REQUEST_METHOD": "GET", "PATH_INFO": f"/v{v}/", "QUERY_STRING": "",
                           "SERVER_NAME": "localhost", "SERVER_PORT": "8000", "HTTP_HOST": "localhost",
                           "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
                           "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
                           "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1"}
                body = application(environ, start_response)
                for _ in body:
                    pass
                body.close()
        return run

    started = time.monotonic()
    _fork_all(worker(i) for i in range(first, first + workers))
    return {"tier": "web", "views": views, "workers": workers, "seconds": round(time.monotonic() - started, 1)}


def exporter(directory: str, names: int, nodes: int, procs: int) -> dict:
    from types import SimpleNamespace

    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    import django_celery_ops  # noqa: F401 - installs the slot storage before any metric exists
    from django_celery_ops import celery_metrics, multiprocess

    task_names = [f"bench.tasks.task_{i:04d}" for i in range(names)]
    delivery = {"routing_key": "celery"}

    def main_process(node: int):
        def run():
            multiprocess.setup(f"n{node:03d}-main")
            hostname = f"celery@node{node:03d}"
            for name in task_names:
                request = SimpleNamespace(task_name=name, hostname=hostname, delivery_info=delivery)
                for _ in range(procs - 1):
                    celery_metrics._on_received(request=request)
        return run

    def child(node: int, c: int):
        def run():
            multiprocess.setup(f"n{node:03d}-c{c}")
            hostname = f"celery@node{node:03d}"
            for i, name in enumerate(task_names):
                tid = f"{node}-{c}-{i}"
                task = SimpleNamespace(name=name, request=SimpleNamespace(
                    hostname=hostname, delivery_info=delivery, id=tid, eta=None,
                    **{celery_metrics.PUBLISHED_HEADER: time.time() - 0.01}))
                celery_metrics._on_prerun(task_id=tid, task=task)
                celery_metrics._on_success(sender=task)
                celery_metrics._on_postrun(task_id=tid, task=task)
        return run

    jobs = []
    for node in range(nodes):
        jobs.append(main_process(node))
        jobs += [child(node, c) for c in range(procs - 1)]
    started = time.monotonic()
    _fork_all(jobs)
    return {"tier": "exporter", "names": names, "nodes": nodes, "procs": procs,
            "seconds": round(time.monotonic() - started, 1)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tier", choices=["web", "exporter"])
    parser.add_argument("directory")
    parser.add_argument("--views", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--names", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--procs", type=int, default=3)
    args = parser.parse_args()
    os.makedirs(args.directory, exist_ok=True)
    if args.tier == "web":
        out = web(args.directory, args.views, args.workers)
    else:
        out = exporter(args.directory, args.names, args.nodes, args.procs)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
