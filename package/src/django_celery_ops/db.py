"""Database metrics of every connection, whatever its backend: django-prometheus' django_db_* families.

django-prometheus gets them from a wrapped ENGINE (one per backend it ships: no MySQL fork, no
custom backend, PostGIS only through its own copy). Here nothing replaces the ENGINE:

- statements: an execute wrapper (Django's ``connection.execute_wrappers``) put on every
  connection when it connects (the ``connection_created`` signal), outermost, so that it also
  times the wrappers a project adds itself;
- connections: ``BaseDatabaseWrapper.connect``, which every backend inherits, counts each
  attempt (django_db_new_connections_total, like django-prometheus' get_new_connection) and each
  failure (django_db_new_connection_errors_total). A backend that overrides connect() without
  calling it is not counted.

The names, labels and semantics are django-prometheus' (docs/metrics.md). ``type`` of
django_db_errors_total is the class name of the driver's exception (``OperationalError`` on
SQLite, ``UndefinedTable`` with psycopg), as django-prometheus' cursor wrapper sees it.
"""
from __future__ import annotations

import functools
import time
from types import SimpleNamespace

from django.db.backends.signals import connection_created
from prometheus_client import Counter, Histogram

from . import conf
from .slotvalue import inc_of, observe_of

_state: dict = {"metrics": None, "connect": None}


def families() -> SimpleNamespace:
    """The django_db_* families, created on first use (the buckets are a setting)."""
    m = _state["metrics"]
    if m is None:
        labels = ["alias", "vendor"]
        m = _state["metrics"] = SimpleNamespace(
            new_connections=Counter("django_db_new_connections_total",
                                    "Counter of created connections by database and by vendor.", labels),
            new_connection_errors=Counter("django_db_new_connection_errors_total",
                                          "Counter of connection failures by database and by vendor.", labels),
            execute=Counter("django_db_execute_total", "Counter of executed statements by database and by "
                            "vendor, including bulk executions.", labels),
            execute_many=Counter("django_db_execute_many_total",
                                 "Counter of executed statements in bulk operations by database and by vendor.",
                                 labels),
            errors=Counter("django_db_errors_total",
                           "Counter of execution errors by database, vendor and exception type.",
                           [*labels, "type"]),
            duration=Histogram("django_db_query_duration_seconds",
                               "Histogram of query duration by database and vendor.", labels,
                               buckets=conf.get("LATENCY_BUCKETS")),
        )
    return m


def _error_type(exc: BaseException) -> str:
    """The driver's exception class, as django-prometheus labels it (Django re-raises it wrapped)."""
    from django.db.utils import Error

    cause = exc.__cause__ if isinstance(exc, Error) else None
    return type(cause if cause is not None else exc).__name__


class ExecuteMetrics:
    """An execute wrapper counting and timing one connection's statements."""

    def __init__(self, alias: str, vendor: str):
        m = families()
        self.labels = (alias, vendor)
        # f(amount) recorders: the children's values written directly (slotvalue.inc_of, observe_of)
        self.execute = inc_of(m.execute.labels(alias, vendor))
        self.execute_many = inc_of(m.execute_many.labels(alias, vendor))
        self.duration = observe_of(m.duration.labels(alias, vendor))
        self.errors = m.errors

    def __call__(self, execute, sql, params, many, context):
        if many:
            if not hasattr(params, "__len__"):
                params = list(params)  # an iterator: count it, then hand the same rows on
            self.execute(len(params))
            self.execute_many(len(params))
        else:
            self.execute(1)
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        except Exception as exc:
            self.errors.labels(*self.labels, _error_type(exc)).inc()
            raise
        finally:
            self.duration(time.perf_counter() - started)


def _on_connection_created(sender=None, connection=None, **_) -> None:
    if connection is None or any(isinstance(w, ExecuteMetrics) for w in connection.execute_wrappers):
        return
    # First = outermost; and `with connection.execute_wrapper(x)` pops the last one on exit,
    # which must stay the project's own even when the connection was opened inside the block.
    connection.execute_wrappers.insert(0, ExecuteMetrics(connection.alias, connection.vendor))


def _count_connect(original):
    @functools.wraps(original)
    def connect(self, *args, **kwargs):
        m = families()
        m.new_connections.labels(self.alias, self.vendor).inc()
        try:
            return original(self, *args, **kwargs)
        except Exception:
            m.new_connection_errors.labels(self.alias, self.vendor).inc()
            raise

    return connect


def install() -> bool:
    """Count every connection's statements and connections from now on; False when DB_METRICS is off."""
    if not conf.get("DB_METRICS"):
        return False
    from django.db import connections
    from django.db.backends.base.base import BaseDatabaseWrapper

    families()
    if _state["connect"] is None:
        _state["connect"] = BaseDatabaseWrapper.connect
        BaseDatabaseWrapper.connect = _count_connect(BaseDatabaseWrapper.connect)
    connection_created.connect(_on_connection_created, dispatch_uid="django_celery_ops.db")
    for connection in connections.all(initialized_only=True):  # opened before the app was ready
        if connection.connection is not None:
            _on_connection_created(connection=connection)
    return True


def uninstall() -> None:
    """Undo install() (tests)."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    if _state["connect"] is not None:
        BaseDatabaseWrapper.connect, _state["connect"] = _state["connect"], None
    connection_created.disconnect(dispatch_uid="django_celery_ops.db")


__all__ = ["ExecuteMetrics", "families", "install", "uninstall"]
