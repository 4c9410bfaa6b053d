"""The metrics endpoint of a web tier, in a process of its own.

It must answer while every gunicorn worker is busy, which is exactly when the numbers matter,
so it is not a view (a busy worker cannot serve it) and not a thread in the gunicorn master
(the master forks workers; forking a threaded process is unsafe). It reads the slot files of
PROMETHEUS_MULTIPROC_DIR, the tier's shape written by the master, and the kernel's accept
queue. It binds 127.0.0.1 by default and serves nothing but /metrics.

    PROMETHEUS_MULTIPROC_DIR=var/prometheus/web python -m django_celery_ops.metrics_server --port 9100
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import multiprocess, tier


def make_registry(directory: str):
    registry = multiprocess.collector_registry()
    registry.register(tier.TierCollector(directory))
    return registry


def make_server(host: str, port: int, directory: str) -> ThreadingHTTPServer:
    registry = make_registry(directory)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?", 1)[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("OBS_METRICS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("OBS_METRICS_PORT", "9100")))
    args = parser.parse_args(argv)
    directory = multiprocess.directory()
    if not directory:
        print("metrics_server: PROMETHEUS_MULTIPROC_DIR must name the tier's metric folder", file=sys.stderr)
        return 2
    os.makedirs(directory, exist_ok=True)
    server = make_server(args.host, args.port, directory)
    # SIGTERM (honcho, make down) ends serve_forever cleanly; shutdown() must come from another thread.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"metrics_server: serving {directory} on http://{args.host}:{server.server_port}/metrics", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "make_registry", "make_server"]
