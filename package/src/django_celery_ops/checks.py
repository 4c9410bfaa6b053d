"""Django system checks that name a misconfiguration of the library (``manage.py check``).

| id | what |
|---|---|
| E001 | an unknown key in DJANGO_CELERY_OPS |
| E002 | a value of the wrong type in DJANGO_CELERY_OPS |
| E003 | PROMETHEUS_MULTIPROC_DIR is set but is not a directory |
| E004 | PROMETHEUS_MULTIPROC_DIR is not writable |
| E005 | django-prometheus' Before/After middlewares next to RequestMiddleware (same families twice) |
| E006 | django-prometheus' database ENGINE while DB_METRICS is on (same families twice) |
| E007 | a Sentry DSN is configured but sentry-sdk (the [sentry] extra) is not installed |
| W001 | PROMETHEUS_MULTIPROC_DIR is not set (``check --deploy``: a multi-worker server needs it) |
| W002 | a URL pattern serves the metrics from a view (use the metrics server) |
| W003 | SLOW_REQUEST_SECONDS is not a boundary of LATENCY_BUCKETS |
| W004 | RequestMiddleware is not in MIDDLEWARE |
| W005 | RequestMiddleware is not first in MIDDLEWARE |
| W006 | django_prometheus is still in INSTALLED_APPS |
| E008 | PROFILE_DIR (profiling on) or STACKS_DIR (slow stacks on) cannot be created or written |
| E009 | profiling is on (PROFILE_DIR and a token or staff profiling) but pyinstrument (the [profiling] extra) is not installed |
| W007 | PROFILE_TOKEN is shorter than 32 characters (guessable) |
| W008 | profiling is configured but ProfilingMiddleware is not in MIDDLEWARE, or staff profiling is on and it sits above AuthenticationMiddleware |
| W009 | MONITORING_CONFIG names a monitoring config whose slo.latency_seconds differs from SLOW_REQUEST_SECONDS, or that cannot be read |
"""
from __future__ import annotations

import os

from django.conf import settings
from django.core import checks

from . import conf

MIDDLEWARE = "django_celery_ops.middleware.RequestMiddleware"
_PROMETHEUS_MIDDLEWARES = ("django_prometheus.middleware.PrometheusBeforeMiddleware",
                           "django_prometheus.middleware.PrometheusAfterMiddleware")
_METRICS_VIEW_MODULES = ("django_prometheus.exports", "prometheus_client")
ENV = "PROMETHEUS_MULTIPROC_DIR"


def _id(code: str) -> str:
    return f"django_celery_ops.{code}"


@checks.register(checks.Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    """E001/E002: every key of DJANGO_CELERY_OPS known, every value of the right type."""
    found = []
    for key, message in conf.problems():
        unknown = key and key not in conf.DEFAULTS
        found.append(checks.Error(
            message, id=_id("E001" if unknown else "E002"),
            hint=("Remove or rename it; docs/web-observability.md lists the settings." if unknown else
                  f"The default is {conf.DEFAULTS.get(key)!r}; docs/web-observability.md explains it.")))
    return found


@checks.register(checks.Tags.compatibility)
def check_multiproc_dir(app_configs=None, **kwargs) -> list:
    """E003/E004: a PROMETHEUS_MULTIPROC_DIR that is set must be a writable directory."""
    path = os.environ.get(ENV)
    if not path:
        return []
    if not os.path.isdir(path):
        return [checks.Error(f"{ENV}={path!r} is not a directory", id=_id("E003"),
                             hint="Create it (one per web tier), or unset it for a single-process server.")]
    if not os.access(path, os.W_OK | os.X_OK):
        return [checks.Error(f"{ENV}={path!r} is not writable by this user", id=_id("E004"),
                             hint="Every worker writes its metric files there: give this user write access.")]
    return []


@checks.register(checks.Tags.compatibility, deploy=True)
def check_multiproc_dir_set(app_configs=None, **kwargs) -> list:
    """W001 (--deploy): without PROMETHEUS_MULTIPROC_DIR each worker counts alone and scrapes disagree."""
    if os.environ.get(ENV):
        return []
    return [checks.Warning(
        f"{ENV} is not set: with more than one worker process (gunicorn, Celery prefork) each process "
        "keeps its own counters and the metrics server sees none of them", id=_id("W001"),
        hint=f"Set {ENV} to an empty directory per web tier, writable by the workers.")]


def _patterns(resolver, prefix: str = ""):
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):  # an include()
            yield from _patterns(pattern, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern.callback


def _is_metrics_view(callback) -> bool:
    view = getattr(callback, "view_class", None) or callback
    module = getattr(view, "__module__", "") or ""
    return module.startswith(_METRICS_VIEW_MODULES)


@checks.register(checks.Tags.urls)
def check_metrics_view(app_configs=None, **kwargs) -> list:
    """W002: the metrics are served by the metrics server, not by a view inside the workers."""
    from django.urls import get_resolver

    try:
        patterns = list(_patterns(get_resolver()))
    except Exception:  # a broken URLconf is Django's own check to report (urls.E...)
        return []
    return [checks.Warning(
        f"the URL pattern {route!r} serves metrics from a view ({getattr(cb, '__module__', '?')}): each "
        "scrape is answered by one busy worker, and hangs when every worker is busy", id=_id("W002"),
        hint="Remove it and run the metrics server (django-celery-ops-metrics) next to the workers.")
        for route, cb in patterns if _is_metrics_view(cb)]


@checks.register(checks.Tags.compatibility)
def check_slow_bucket(app_configs=None, **kwargs) -> list:
    """W003: DjangoSlowRequests' SLO reads le=<SLOW_REQUEST_SECONDS>: it must be a bucket boundary."""
    if conf.problems():
        return []  # E001/E002 name the setting first
    slow, buckets = conf.get("SLOW_REQUEST_SECONDS"), conf.get("LATENCY_BUCKETS")
    if float(slow) in buckets:
        return []
    return [checks.Warning(
        f"DJANGO_CELERY_OPS['SLOW_REQUEST_SECONDS']={slow!r} is not a boundary of "
        f"DJANGO_CELERY_OPS['LATENCY_BUCKETS']: the latency histogram has no le=\"{slow}\" series",
        id=_id("W003"), hint="Add it to LATENCY_BUCKETS, or leave LATENCY_BUCKETS at None (the default adds it).")]


@checks.register(checks.Tags.compatibility)
def check_middleware(app_configs=None, **kwargs) -> list:
    """W004/W005/E005: RequestMiddleware present, first, and alone (no django-prometheus pair)."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    found = []
    if MIDDLEWARE not in middleware:
        found.append(checks.Warning(f"{MIDDLEWARE} is not in MIDDLEWARE: no request metrics are recorded",
                                    id=_id("W004"), hint="Add it as the first entry of MIDDLEWARE."))
    elif middleware[0] != MIDDLEWARE:
        found.append(checks.Warning(
            f"{MIDDLEWARE} is not first in MIDDLEWARE (it is #{middleware.index(MIDDLEWARE) + 1}): the time and "
            f"the exceptions of {middleware[0]} and the others above it are not counted",
            id=_id("W005"), hint="Move it to the top of MIDDLEWARE."))
    both = [m for m in middleware if m in _PROMETHEUS_MIDDLEWARES]
    if both:
        found.append(checks.Error(
            f"{', '.join(both)} in MIDDLEWARE: RequestMiddleware already writes django-prometheus' request "
            "families; both would register the same metric names", id=_id("E005"),
            hint="Remove django-prometheus' middlewares (its metric names are kept by RequestMiddleware)."))
    return found


@checks.register(checks.Tags.database)
def check_db_engine(app_configs=None, **kwargs) -> list:
    """E006/W006: django-prometheus' DB wrapper or app next to ours count the same families twice."""
    found = []
    if not conf.problems() and conf.get("DB_METRICS"):
        for alias, db in (getattr(settings, "DATABASES", None) or {}).items():
            engine = db.get("ENGINE", "")
            if engine.startswith("django_prometheus."):
                found.append(checks.Error(
                    f"DATABASES[{alias!r}]['ENGINE']={engine!r}: django_celery_ops already counts every "
                    "connection's queries (DB_METRICS); both would register the django_db_* names",
                    id=_id("E006"), hint="Use the Django backend itself, e.g. "
                    f"{engine.replace('django_prometheus.db.backends', 'django.db.backends')!r}."))
    if "django_prometheus" in getattr(settings, "INSTALLED_APPS", ()):
        found.append(checks.Warning(
            "django_prometheus is in INSTALLED_APPS: django_celery_ops exports its metric names itself",
            id=_id("W006"), hint="Remove it (and its URLs); see docs/web-observability.md."))
    return found


@checks.register(checks.Tags.compatibility)
def check_sentry_sdk(app_configs=None, **kwargs) -> list:
    """E007: a DSN with no SDK to send to it would lose every error report."""
    from . import sentry

    if conf.problems() or sentry.sentry_sdk is not None or not conf.get("SENTRY")["DSN"]:
        return []
    return [checks.Error(sentry.MISSING_SDK, id=_id("E007"), hint="Install the extra, or unset the DSN.")]


PROFILING_MIDDLEWARE = "django_celery_ops.profiling.ProfilingMiddleware"
_AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


def _unwritable(path: str) -> str | None:
    """Why path cannot be written (or made), or None."""
    path = os.path.abspath(path)
    if os.path.exists(path):
        if not os.path.isdir(path):
            return "is not a directory"
        return None if os.access(path, os.W_OK | os.X_OK) else "is not writable by this user"
    parent = os.path.dirname(path)
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
        return f"does not exist and cannot be created ({parent!r} is not writable)"
    return None


@checks.register(checks.Tags.compatibility)
def check_profiling(app_configs=None, **kwargs) -> list:
    """E008/E009/W007/W008: profiles and slow stacks can be written; the token is not guessable."""
    if conf.problems():
        return []  # E001/E002 name the setting first
    from . import profiling

    found = []
    folders = [("PROFILE_DIR", conf.get("PROFILE_DIR"))] if profiling.enabled() else []
    if conf.get("SLOW_STACKS") and conf.get("STACKS_DIR"):
        folders.append(("STACKS_DIR", conf.get("STACKS_DIR")))
    for key, path in folders:
        why = _unwritable(path)
        if why:
            found.append(checks.Error(f"DJANGO_CELERY_OPS[{key!r}]={path!r} {why}", id=_id("E008"),
                                      hint="Every worker writes its files there: create it, writable by this user."))
    token = conf.get("PROFILE_TOKEN")
    if token and len(token) < profiling.MIN_TOKEN_LENGTH:
        found.append(checks.Warning(
            f"DJANGO_CELERY_OPS['PROFILE_TOKEN'] is {len(token)} characters: anyone who guesses it makes the "
            "server profile (and slow down) their requests", id=_id("W007"),
            hint=f"Use at least {profiling.MIN_TOKEN_LENGTH} random characters, e.g. "
                 "python -c 'import secrets; print(secrets.token_urlsafe(32))'."))
    if not profiling.enabled():
        return found
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        found.append(checks.Error("profiling is on but pyinstrument is not installed: no profile would be written",
                                  id=_id("E009"), hint="pip install 'django-celery-ops[profiling]'."))
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if PROFILING_MIDDLEWARE not in middleware:
        found.append(checks.Warning(f"profiling is configured but {PROFILING_MIDDLEWARE} is not in MIDDLEWARE",
                                    id=_id("W008"), hint="Add it below AuthenticationMiddleware."))
    elif conf.get("PROFILE_STAFF") and (_AUTH_MIDDLEWARE not in middleware or
                                        middleware.index(_AUTH_MIDDLEWARE) > middleware.index(PROFILING_MIDDLEWARE)):
        found.append(checks.Warning(
            f"PROFILE_STAFF is on but {PROFILING_MIDDLEWARE} is not below {_AUTH_MIDDLEWARE}: it cannot see the "
            "session's user, so no staff request is profiled", id=_id("W008"),
            hint="Move it below AuthenticationMiddleware."))
    return found


@checks.register(checks.Tags.compatibility)
def check_monitoring_config(app_configs=None, **kwargs) -> list:
    """W009: the alerts' slow threshold (the monitoring config) and the app's must be the same bucket."""
    path = "" if conf.problems() else conf.get("MONITORING_CONFIG")
    if not path:
        return []
    setting = "DJANGO_CELERY_OPS['MONITORING_CONFIG']"
    try:
        from .monitoring import config as monitoring_config
        latency = monitoring_config.load(path)["slo"]["latency_seconds"]
    except ImportError as exc:
        return [checks.Warning(f"{setting}={path!r} cannot be read: {exc}", id=_id("W009"),
                               hint="pip install 'django-celery-ops[monitoring]', or unset the setting.")]
    except (OSError, ValueError) as exc:  # a missing file; ConfigError and YAML errors are ValueErrors
        return [checks.Warning(f"{setting}={path!r} cannot be read: {exc}", id=_id("W009"))]
    slow = conf.get("SLOW_REQUEST_SECONDS")
    if float(latency) == float(slow):
        return []
    return [checks.Warning(
        f"{path}: slo.latency_seconds={latency!r} but DJANGO_CELERY_OPS['SLOW_REQUEST_SECONDS']={slow!r}: "
        "DjangoSlowRequests and the latency SLO count a different request as slow than the app logs and counts",
        id=_id("W009"), hint="Make them equal, then `django-celery-ops-monitoring generate`.")]


__all__ = ["check_profiling", "check_sentry_sdk", "check_settings", "check_multiproc_dir", "check_multiproc_dir_set", "check_metrics_view",
           "check_slow_bucket", "check_middleware", "check_db_engine", "check_monitoring_config"]
