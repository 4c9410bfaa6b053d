"""In-process cost per request of each instrumentation layer (no gunicorn, no socket).

    .venv/bin/python -m bench.web.profile_request [--layer bare|metrics|sentry|tracing] [--n 20000] [--path /healthz] [--profile]

Calls the WSGI application directly with a minimal environ, in multiprocess mode (a temporary
PROMETHEUS_MULTIPROC_DIR) and with the timeout evidence armed (evidence.arm(), as gunicorn's
post_worker_init does), as a gunicorn sync worker would; prints microseconds per request.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.fake_sentry import FakeSentry

ROOT = Path(__file__).resolve().parents[2]

_CHILD = r"""
import cProfile, io, os, pstats, sys, time
layer, n, path, profile = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
import django_celery_ops  # the slot-file storage, before any metric exists
from django_celery_ops import multiprocess
multiprocess.setup("worker")
if layer != "bare":
    from django_celery_ops import sentry
    sentry.init()
from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()
# As gunicorn's post_worker_init does: the timeout-evidence record is part of every request's cost.
import tempfile
from django_celery_ops import evidence
evidence.arm(tempfile.mkdtemp(prefix="evidence-", dir=os.environ["OPS_VAR_DIR"]))

def environ():
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "localhost",
            "SERVER_PORT": "8000", "HTTP_HOST": "localhost", "SERVER_PROTOCOL": "HTTP/1.1",
            "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr,
            "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
            "HTTP_USER_AGENT": "wrk", "REMOTE_ADDR": "127.0.0.1"}

def start_response(status, headers, exc_info=None):
    assert status.startswith(("200", "500")), status

def one():
    body = application(environ(), start_response)
    for _ in body:
        pass
    body.close()

for _ in range(500):
    one()
best = None
for _ in range(3):
    t = time.perf_counter()
    for _ in range(n):
        one()
    dt = (time.perf_counter() - t) / n * 1e6
    best = dt if best is None else min(best, dt)
print(f"{layer} {path} {best:.1f} us/request")
if profile:
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        one()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats(os.environ.get("SORT", "tottime")).print_stats(os.environ.get("FILTER", ""), 35)
    print(s.getvalue())
"""

LAYERS = {
    "bare": {"DJANGO_SETTINGS_MODULE": "bench.web.settings_bare"},
    "metrics": {},
    "sentry": {"SENTRY_DSN": "DSN"},
    "tracing": {"SENTRY_DSN": "DSN", "SENTRY_TRACES_SAMPLE_RATE": "0.01"},
}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--layer", action="append")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="profile-web-") as tmp, FakeSentry() as sentry:
        for layer in args.layer or list(LAYERS):
            env = {**os.environ, "DJANGO_ENV": "test", "OPS_VAR_DIR": tmp, "DRILLS_ENABLED": "1",
                   "PROMETHEUS_MULTIPROC_DIR": f"{tmp}/prom-{layer}", "DJANGO_SETTINGS_MODULE": "app.settings",
                   **{k: v.replace("DSN", sentry.dsn) for k, v in LAYERS[layer].items()}}
            env.pop("SENTRY_DSN", None) if "SENTRY_DSN" not in LAYERS[layer] else None
            subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], env=env, cwd=ROOT, check=True)
            subprocess.run([sys.executable, "-c", _CHILD, layer, str(args.n), args.path,
                            "1" if args.profile else "0"], env=env, cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
