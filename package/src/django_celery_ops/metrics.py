"""Our own metrics of the web tiers (docs/metrics.md); django-prometheus provides the rest.

Import this only after multiprocess.setup() ran in the process, so that the values land in
the process's own slot files.
"""
from prometheus_client import Counter, Gauge, Histogram

_QUEUE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

slow_requests = Counter(
    "django_http_slow_requests", "Requests slower than OBS_SLOW_REQUEST_SECONDS.", ["view", "method"])
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
