"""The metrics of the web tiers (docs/metrics.md): ours, and django-prometheus' request families.

Import this only after multiprocess.setup() ran in the process, so that the values land in
the process's own slot files.
"""
from types import SimpleNamespace

from prometheus_client import Counter, Gauge, Histogram

from . import conf

_QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

slow_requests = Counter(
    "django_http_slow_requests", "Requests slower than DJANGO_CELERY_OPS['SLOW_REQUEST_SECONDS'].", ["view", "method"])
request_queue_seconds = Histogram(
    "django_http_request_queue_seconds", "Time from the proxy's X-Request-Start to Django starting the request.",
    buckets=_QUEUE_BUCKETS)
requests_in_flight = Gauge(
    "gunicorn_requests_in_flight", "Requests being served now (busy worker slots).", multiprocess_mode="livesum")
worker_timeouts = Counter(
    "gunicorn_worker_timeouts", "Workers the gunicorn master killed for WORKER TIMEOUT.")
worker_exits = Counter(
    "gunicorn_worker_exits", "Worker processes that ended, by reason.", ["reason"])

EXIT_REASONS = ("recycled", "timeout", "signal", "crash", "shutdown")

# django-prometheus' migration gauges keep the value of every process that ever wrote one
# (multiprocess mode "all", one series per process), and computing them in AppConfig.ready()
# queries the database during app start-up. Same names here, one live value per tier, set by
# the gunicorn worker once the app is loaded. Not registered: only the file collector reads them.
migrations_unapplied = Gauge("django_migrations_unapplied_total", "Count of unapplied migrations by database connection",
                             ["connection"], multiprocess_mode="livemax", registry=None)
migrations_applied = Gauge("django_migrations_applied_total", "Count of applied migrations by database connection",
                           ["connection"], multiprocess_mode="livemax", registry=None)


def export_migrations() -> None:
    """Set the migration gauges of every database connection."""
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    for alias in connections.databases:
        executor = MigrationExecutor(connections[alias])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        migrations_unapplied.labels(alias).set(len(plan))
        migrations_applied.labels(alias).set(len(executor.loader.applied_migrations))
    connections.close_all()


# django-prometheus' request families that django-mixin's dashboards and our rules read (the metric
# contract, docs/metrics.md): its names, help texts, labels and buckets, without the package.
BODY_BYTES_BUCKETS = (0, *(2 ** i for i in range(30)))  # django-prometheus' PowersOf(2, 30)
HTTP_FAMILIES = (
    "django_http_requests_latency_seconds_by_view_method", "django_http_responses_total_by_status_view_method",
    "django_http_requests_total_by_view_transport_method", "django_http_exceptions_total_by_type",
    "django_http_exceptions_total_by_view", "django_http_requests_body_total_bytes",
    "django_http_responses_body_total_bytes", "django_http_responses_total_by_templatename",
    "django_http_responses_streaming",
)
_http: dict = {}


def http() -> SimpleNamespace:
    """The request families, created on first use (the latency buckets are a setting)."""
    if "m" not in _http:
        _http["m"] = SimpleNamespace(
            latency=Histogram("django_http_requests_latency_seconds_by_view_method",
                              "Histogram of request processing time labelled by view.", ["view", "method"],
                              buckets=conf.get("LATENCY_BUCKETS")),
            responses=Counter("django_http_responses_total_by_status_view_method",
                              "Count of responses by status, view, method.", ["status", "view", "method"]),
            by_view=Counter("django_http_requests_total_by_view_transport_method",
                            "Count of requests by view, transport, method.", ["view", "transport", "method"]),
            exceptions_by_type=Counter("django_http_exceptions_total_by_type", "Count of exceptions by object type.",
                                       ["type"]),
            exceptions_by_view=Counter("django_http_exceptions_total_by_view", "Count of exceptions by view.",
                                       ["view"]),
            request_body=Histogram("django_http_requests_body_total_bytes", "Histogram of requests by body size.",
                                   buckets=BODY_BYTES_BUCKETS),
            response_body=Histogram("django_http_responses_body_total_bytes", "Histogram of responses by body size.",
                                    buckets=BODY_BYTES_BUCKETS),
            by_template=Counter("django_http_responses_total_by_templatename", "Count of responses by template name.",
                                ["templatename"]),
            streaming=Counter("django_http_responses_streaming_total", "Count of streaming responses."),
        )
    return _http["m"]


__all__ = ["BODY_BYTES_BUCKETS", "EXIT_REASONS", "HTTP_FAMILIES", "export_migrations", "http",
           "migrations_applied", "migrations_unapplied", "request_queue_seconds", "requests_in_flight",
           "slow_requests", "worker_exits", "worker_timeouts"]
