"""The library's settings: one dict, ``DJANGO_CELERY_OPS``, each key with a documented default.

    DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 2.0, "SENTRY": {"DSN": "https://..."}}

``get(name)`` returns the project's value or the default. A key the library does not know, or a
value of the wrong type, is reported by the system check django_celery_ops.E001/E002 naming it
(``manage.py check``); ``get`` raises ImproperlyConfigured naming it, never an AttributeError at
the first request. The table of docs/web-observability.md ("Settings") lists the same defaults.
"""
from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

SETTING = "DJANGO_CELERY_OPS"

# django-prometheus' default latency buckets (its PROMETHEUS_LATENCY_BUCKETS, +Inf added by the client).
DEFAULT_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0, 50.0, 75.0)


def _sentry_defaults() -> dict:
    """SENTRY's defaults come from the SENTRY_* environment, as the SDK's own do."""
    return {
        "DSN": os.environ.get("SENTRY_DSN", ""),
        "ENVIRONMENT": os.environ.get("SENTRY_ENVIRONMENT") or None,
        "RELEASE": os.environ.get("SENTRY_RELEASE") or None,
        "TRACES_SAMPLE_RATE": _env_rate(),
    }


def _env_rate() -> float:
    raw = os.environ.get("SENTRY_TRACES_SAMPLE_RATE") or "0"
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0 <= rate <= 1:
        raise ImproperlyConfigured(f"SENTRY_TRACES_SAMPLE_RATE={raw!r} must be a number from 0 to 1")
    return rate


DEFAULTS: dict = {
    # Requests at least this slow (seconds) count in django_http_slow_requests_total and are logged.
    "SLOW_REQUEST_SECONDS": 1.0,
    # Latency histogram buckets (seconds); None: DEFAULT_LATENCY_BUCKETS plus SLOW_REQUEST_SECONDS.
    "LATENCY_BUCKETS": None,
    # ASGI: how often the event-loop lag probe runs (seconds).
    "LOOP_LAG_INTERVAL_SECONDS": 0.1,
    # ASGI: log the loop thread's stack once the loop is blocked this long (seconds).
    "LOOP_LAG_LOG_SECONDS": 0.5,
    # Peers (addresses or networks) whose X-Forwarded-* headers are believed.
    "TRUSTED_PROXIES": (),
    # Sentry: DSN ("" = off), ENVIRONMENT, RELEASE, TRACES_SAMPLE_RATE (0 = errors only); SENTRY_* env.
    "SENTRY": None,
    # Database metrics (django_db_*) for every connection, of any backend.
    "DB_METRICS": True,
    # Profiles on demand (ProfilingMiddleware, docs/profiling.md): the folder ("" = off), the secret of the
    # X-Profile-Token header ("" = never by header), staff sessions asking with ?_profile=1, newest kept.
    "PROFILE_DIR": "",
    "PROFILE_TOKEN": "",
    "PROFILE_STAFF": False,
    "PROFILE_KEEP": 50,
    # Stacks of requests still running past SLOW_REQUEST_SECONDS (slowstack.py): on/off, the folder
    # ("" = in the log line only), newest kept.
    "SLOW_STACKS": True,
    "STACKS_DIR": "",
    "STACKS_KEEP": 200,
    # The project's monitoring config (django-celery-ops-monitoring --config): when set, check W009
    # compares its slo.latency_seconds with SLOW_REQUEST_SECONDS ("" = not checked).
    "MONITORING_CONFIG": "",
}
_SENTRY_KEYS = ("DSN", "ENVIRONMENT", "RELEASE", "TRACES_SAMPLE_RATE")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive(value) -> str | None:
    return None if _number(value) and value > 0 else "must be a number greater than 0"


def _buckets(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or not value or not all(_number(b) for b in value):
        return "must be None or a non-empty list of numbers"
    if list(value) != sorted(set(value)):
        return "must be in increasing order, without repeats"
    return None


def _proxies(value) -> str | None:
    if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
        return "must be a list of addresses or networks (strings)"
    for proxy in value:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            return f"{proxy!r} is not an address or network"
    return None


def _sentry(value) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return "must be a dict with DSN, ENVIRONMENT, RELEASE, TRACES_SAMPLE_RATE"
    unknown = sorted(set(value) - set(_SENTRY_KEYS))
    if unknown:
        return f"has unknown key(s) {', '.join(unknown)} (known: {', '.join(_SENTRY_KEYS)})"
    if not isinstance(value.get("DSN", ""), str):
        return "DSN must be a string"
    for key in ("ENVIRONMENT", "RELEASE"):
        if value.get(key) is not None and not isinstance(value[key], str):
            return f"{key} must be a string or None"
    rate = value.get("TRACES_SAMPLE_RATE", 0.0)
    if not (_number(rate) and 0 <= rate <= 1):
        return "TRACES_SAMPLE_RATE must be a number from 0 to 1"
    return None


def _bool(value) -> str | None:
    return None if isinstance(value, bool) else "must be True or False"


def _str(value) -> str | None:
    return None if isinstance(value, str) else "must be a string"


def _count(value) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) and value > 0 else "must be a whole number above 0"


_VALIDATORS: dict[str, Callable] = {
    "SLOW_REQUEST_SECONDS": _positive, "LATENCY_BUCKETS": _buckets, "LOOP_LAG_INTERVAL_SECONDS": _positive,
    "LOOP_LAG_LOG_SECONDS": _positive, "TRUSTED_PROXIES": _proxies, "SENTRY": _sentry, "DB_METRICS": _bool,
    "PROFILE_DIR": _str, "PROFILE_TOKEN": _str, "PROFILE_STAFF": _bool, "PROFILE_KEEP": _count,
    "SLOW_STACKS": _bool, "STACKS_DIR": _str, "STACKS_KEEP": _count, "MONITORING_CONFIG": _str,
}
_cache: dict = {}


def _has_settings() -> bool:
    return settings.configured or bool(os.environ.get("DJANGO_SETTINGS_MODULE"))


def _user() -> dict:
    if not _has_settings():
        return {}
    value = getattr(settings, SETTING, None)
    return value if isinstance(value, dict) else {}


def problems() -> list[tuple[str, str]]:
    """(key, message) for every unknown key and every wrong value of DJANGO_CELERY_OPS."""
    if not _has_settings():
        return []
    raw = getattr(settings, SETTING, {})
    if not isinstance(raw, dict):
        return [("", f"{SETTING} must be a dict, not {type(raw).__name__}")]
    found = []
    try:
        _sentry_defaults()
    except ImproperlyConfigured as exc:  # a SENTRY_* environment variable the SENTRY setting defaults to
        found.append(("SENTRY", str(exc)))
    found += [(key, f"{SETTING}[{key!r}] is not a setting of django_celery_ops (known: {', '.join(DEFAULTS)})")
             for key in raw if key not in DEFAULTS]
    for key, check in _VALIDATORS.items():
        if key in raw:
            message = check(raw[key])
            if message:
                found.append((key, f"{SETTING}[{key!r}] {message}, not {raw[key]!r}"))
    return found


def _resolve(name: str):
    user = _user()
    if name not in DEFAULTS:
        raise ImproperlyConfigured(f"{name!r} is not a setting of django_celery_ops (known: {', '.join(DEFAULTS)})")
    if name in user:
        message = _VALIDATORS[name](user[name])
        if message:
            raise ImproperlyConfigured(f"{SETTING}[{name!r}] {message}, not {user[name]!r}")
    if name == "SENTRY":
        return {**_sentry_defaults(), **(user.get("SENTRY") or {})}
    if name == "LATENCY_BUCKETS":
        buckets = user.get("LATENCY_BUCKETS")
        if buckets is None:
            slow = _resolve("SLOW_REQUEST_SECONDS")
            return tuple(sorted({*DEFAULT_LATENCY_BUCKETS, float(slow)})) + (float("inf"),)
        return tuple(float(b) for b in buckets) + (() if buckets[-1] == float("inf") else (float("inf"),))
    if name == "TRUSTED_PROXIES":
        return tuple(user.get(name, DEFAULTS[name]))
    return user.get(name, DEFAULTS[name])


def get(name: str):
    """The value of one setting of DJANGO_CELERY_OPS, or its default."""
    try:
        return _cache[name]
    except KeyError:
        value = _resolve(name)
        if settings.configured and name != "SENTRY":  # SENTRY's defaults follow the environment
            _cache[name] = value
        return value


def _reset(*, setting: str = "", **_) -> None:
    if setting == SETTING:
        _cache.clear()


setting_changed.connect(_reset, dispatch_uid="django_celery_ops.conf")

__all__ = ["DEFAULTS", "DEFAULT_LATENCY_BUCKETS", "SETTING", "get", "problems"]
