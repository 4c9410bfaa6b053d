"""The CPU one request spends in RequestMiddleware, measured as a difference in one process.

    .venv/bin/python -m bench.web.marginal [--tier wsgi|asgi] [--rounds 15] [--n 2000] [--path /healthz] [--profile]

(about 20 s)

Two Django handlers of the app in the same process, one with the app's MIDDLEWARE and one
without django_celery_ops.middleware.RequestMiddleware, in multiprocess mode (a temporary
PROMETHEUS_MULTIPROC_DIR, the slot claimed as a worker does) with the timeout evidence armed.
They take turns, --n requests each, --rounds times; each turn's CPU time (time.process_time())
per request is taken, and the instrumentation's cost is the median over rounds of
(with - without). On a shared machine the absolute figures drift with the neighbours; the
difference of two turns a few milliseconds apart drifts much less. profile_request.py gives
the whole layer, Django and Sentry included.

--only with|without|passthrough runs one handler --n times and exits (passthrough: a middleware
that only calls the next one, in RequestMiddleware's place: what being a middleware costs).
--sentry calls django_celery_ops.sentry.init() first, as the gunicorn hook does (set SENTRY_DSN).
Under valgrind, the difference of two runs' instruction counts divided by the difference of
their --n is a figure no neighbour can move; bench/web/instructions.py runs them and prints the
table (bench/web/RESULTS.md, "Instructions per request").
"""
from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import sys
import tempfile
import time

OURS = "django_celery_ops.middleware.RequestMiddleware"
PASSTHROUGH = "bench.web.marginal.PassThrough"


class PassThrough:
    """A middleware that does nothing but call the next one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)


def _environ(path: str) -> dict:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
            "SERVER_PORT": "8000", "HTTP_HOST": "localhost", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "HTTP_USER_AGENT": "wrk", "REMOTE_ADDR": "127.0.0.1"}


def _start_response(status, headers, exc_info=None):
    assert status.startswith("200"), status


def wsgi_batch(handler, path: str, n: int) -> None:
    for _ in range(n):
        body = handler(_environ(path), _start_response)
        for _chunk in body:
            pass
        body.close()


def asgi_batch(loop, handler, path: str, n: int) -> None:
    async def one():
        sent = []

        async def receive():
            if not sent:
                sent.append(1)
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()

        async def send(message):
            if message["type"] == "http.response.start":
                assert message["status"] == 200, message["status"]

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"localhost"), (b"user-agent", b"wrk")], "client": ("127.0.0.1", 40000),
                 "server": ("localhost", 8001)}
        await handler(scope, receive, send)

    async def run():
        for _ in range(n):
            await one()

    loop.run_until_complete(run())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tier", choices=("wsgi", "asgi"), default="wsgi")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--n", type=int, default=None, help="requests per turn (default: 2000 WSGI, 300 ASGI)")
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--profile", action="store_true", help="also a cProfile of the instrumented handler")
    parser.add_argument("--only", choices=("with", "without", "passthrough"), default=None,
                        help="build only this handler, warm it up, run --n requests and exit (for valgrind: see above)")
    parser.add_argument("--sentry", action="store_true", help="sentry.init() first, as the gunicorn hook does")
    args = parser.parse_args()
    n = args.n or (2000 if args.tier == "wsgi" else 300)
    tmp = tempfile.mkdtemp(prefix="marginal-")
    os.environ.update({"PROMETHEUS_MULTIPROC_DIR": tmp, "DJANGO_SETTINGS_MODULE": "app.settings",
                       "DJANGO_ENV": os.environ.get("DJANGO_ENV", "test"), "OPS_VAR_DIR": tmp})
    os.environ.pop("OBS_PROFILE_TOKEN", None)
    from django_celery_ops import multiprocess

    multiprocess.setup("worker")
    import django

    django.setup()
    import logging

    logging.getLogger("django_celery_ops.loop_lag").setLevel(logging.ERROR)
    if args.sentry:
        from django_celery_ops import sentry

        if not sentry.init():
            parser.error("--sentry: sentry.init() did not start the SDK (is SENTRY_DSN set?)")
    from django.conf import settings
    from django.core.handlers.asgi import ASGIHandler
    from django.core.handlers.wsgi import WSGIHandler

    from django_celery_ops import evidence

    evidence.arm(tempfile.mkdtemp(prefix="evidence-", dir=tmp))
    make = WSGIHandler if args.tier == "wsgi" else ASGIHandler
    full = list(settings.MIDDLEWARE)
    assert OURS in full, f"{OURS} is not in the app's MIDDLEWARE"
    loop = asyncio.new_event_loop()

    def batch(handler, count):
        if args.tier == "wsgi":
            wsgi_batch(handler, args.path, count)
        else:
            asgi_batch(loop, handler, args.path, count)

    if args.only:  # one handler in the process: the counts of two runs differ by the requests alone
        settings.MIDDLEWARE = {"with": full, "without": [m for m in full if m != OURS],
                               "passthrough": [PASSTHROUGH if m == OURS else m for m in full]}[args.only]
        handler = make()
        batch(handler, 300)  # warm-up: label children, caches
        batch(handler, n)
        return 0
    with_ours = make()
    settings.MIDDLEWARE = [m for m in full if m != OURS]
    without = make()
    settings.MIDDLEWARE = full

    def cpu(handler) -> float:
        c = time.process_time()
        batch(handler, n)
        return (time.process_time() - c) / n * 1e6

    for handler in (with_ours, without):
        batch(handler, 300)  # warm-up: label children, caches
    a, b, d = [], [], []
    for r in range(args.rounds):
        if r % 2:
            y, x = cpu(without), cpu(with_ours)
        else:
            x, y = cpu(with_ours), cpu(without)
        a.append(x)
        b.append(y)
        d.append(x - y)
    q = statistics.quantiles(d, n=4) if len(d) > 1 else [d[0], d[0], d[0]]
    print(f"{args.tier} {args.path}: without {statistics.median(b):.1f} µs, with {statistics.median(a):.1f} µs; "
          f"RequestMiddleware costs {statistics.median(d):.2f} µs CPU per request "
          f"(IQR {q[0]:.2f}..{q[2]:.2f}, {args.rounds} rounds x {n}); ratio {statistics.median(b) / statistics.median(a):.3f}")
    if args.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
        batch(with_ours, n)
        pr.disable()
        pstats.Stats(pr).sort_stats(os.environ.get("SORT", "tottime")).print_stats(
            os.environ.get("FILTER", ""), 40)
    return 0


if __name__ == "__main__":
    sys.exit(main())
