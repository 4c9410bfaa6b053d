"""Task exceptions reach Sentry with the task name, in the trace of the request that queued them."""
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support import stack
from tests.support.celery import produce

pytestmark = pytest.mark.integration


class _Ingest(BaseHTTPRequestHandler):
    """A stand-in for Sentry's envelope endpoint: keeps every item it is sent."""

    items: list = []  # noqa: RUF012 - shared on purpose: the test reads what the handlers stored

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2]):
            try:
                self.items.append((json.loads(header).get("type"), json.loads(payload)))
            except ValueError:
                pass
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sentry_dsn():
    server = ThreadingHTTPServer((stack.HOST, 0), _Ingest)
    _Ingest.items = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://publickey@{stack.HOST}:{server.server_address[1]}/1"
    server.shutdown()
    server.server_close()


def test_task_exception_reaches_sentry_with_task_name_and_the_producers_trace(celery_env, var_dir, procs,
                                                                           sentry_dsn):
    env = {**celery_env, "SENTRY_DSN": sentry_dsn, "SENTRY_TRACES_SAMPLE_RATE": "1.0"}
    procs.append(stack.start_celery_worker(env, var_dir, concurrency=1))
    out = produce(env, "import sentry_sdk",
                  "from django_celery_ops import sentry",
                  "assert sentry.init()",
                  "with sentry_sdk.start_transaction(name='POST /api/imports/', op='http.server') as t:",
                  "    tasks.fail.delay()",
                  "print(t.trace_id)",
                  "sentry_sdk.flush(5)")
    trace_id = out.strip().splitlines()[-1]

    def error_event():
        return next((p for kind, p in _Ingest.items if kind == "event" and p.get("exception")), None)

    event = stack.wait_for(error_event, 30, "the task's exception reached Sentry")
    assert event["exception"]["values"][-1]["type"] == "DrillError"
    assert event["tags"].get("celery_task_name") == "drills.fail" or event.get("transaction") == "drills.fail"
    assert event["contexts"]["trace"]["trace_id"] == trace_id
