"""A long-lived metrics process serving one multiprocess folder, as production runs it (bench/scrape/run.py).

    python -m bench.scrape.reader {web|exporter} {ours|stock} DIR

ours/web:      django_celery_ops.metrics_server.make_server (the web tier's metrics server, whatever
               reader and render path it wires in), PROMETHEUS_MULTIPROC_DIR=DIR as ops/Procfile sets it.
ours/exporter: django_celery_ops.exporter.Exporter(...).start() (its HTTP handler), with
               EXPORTER_METRICS_DIR=DIR, an in-memory broker and cluster metrics off (the queue and
               worker gauges are a few series, not what this bench measures).
stock:         prometheus_client's MultiProcessCollector on a fresh CollectorRegistry, served by
               prometheus_client's own MetricsHandler (what django-prometheus' multiprocess recipe and
               celery-exporter-style exporters serve).

Prints one JSON line {"port": N} when it listens, then serves until stdin closes or SIGTERM.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading


def _serve_stock(directory: str):
    from http.server import ThreadingHTTPServer

    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import MetricsHandler
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    server = ThreadingHTTPServer(("127.0.0.1", 0), MetricsHandler.factory(registry))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def _serve_ours_web(directory: str):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from django_celery_ops import metrics_server

    server = metrics_server.make_server("127.0.0.1", 0, directory)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]


def _serve_ours_exporter(directory: str):
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # as ops/Procfile: the exporter itself writes no files
    os.environ["EXPORTER_METRICS_DIR"] = directory
    from celery import Celery

    from django_celery_ops.exporter import Config, Exporter

    app = Celery("bench", broker="memory://")
    config = Config.from_env()
    config.host, config.port, config.cluster_metrics, config.poll_seconds = "127.0.0.1", 0, "never", 60.0
    server = Exporter(app, config).start()
    return server.server_address[1]


def main() -> int:
    tier, reader, directory = sys.argv[1:4]
    serve = {"stock": _serve_stock}.get(reader) or {"web": _serve_ours_web, "exporter": _serve_ours_exporter}[tier]
    port = serve(directory)
    print(json.dumps({"port": port}), flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
