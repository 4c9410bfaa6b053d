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
from http.server import ThreadingHTTPServer


from . import cardinality, exposition, multiprocess, slotreader, tier


def make_collectors(directory: str) -> list:
    """What /metrics serves: the slot files (incremental reader, views capped), the cap's counters, the tier."""
    policy = cardinality.web_policy()  # views and task names capped (docs/scaling.md)
    return [slotreader.SlotReader(directory, series_filter=policy), policy, tier.TierCollector(directory)]


def make_server(host: str, port: int, directory: str) -> ThreadingHTTPServer:
    collectors = make_collectors(directory)
    server = ThreadingHTTPServer((host, port), exposition.make_handler(lambda: collectors, ("/metrics", "/")))
    server.daemon_threads = True
    collectors[0].warm()  # index the files already there before the first scrape asks
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


__all__ = ["main", "make_collectors", "make_server"]
