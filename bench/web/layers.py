"""The layers of bench/web (run.py under gunicorn, profile_request.py in-process): one place to define them.

Each layer: the settings module, the extra environment, the tier (wsgi|asgi), the application
gunicorn loads, the views it is measured on, and the group whose bare layer its ratio is taken
against. "{dir}" in env is the layer's PROMETHEUS_MULTIPROC_DIR; "{dsn}" the fake Sentry DSN.
"""
from __future__ import annotations

import importlib.util
import secrets

VIEWS = {"trivial": "/healthz", "db": "/drills/db-view/"}
PROFILE_TOKEN = secrets.token_hex(16)  # arms ProfilingMiddleware; no bench request sends it


def profiling_available() -> bool:
    """D's ProfilingMiddleware importable and in the app's MIDDLEWARE (bench.web.run reports when not)."""
    if importlib.util.find_spec("django_celery_ops.profiling") is None:
        return False
    settings = (importlib.util.find_spec("app.settings").origin or "")
    with open(settings) as f:
        return "django_celery_ops.profiling.ProfilingMiddleware" in f.read()


def layers(include_info: bool = False) -> dict[str, dict]:
    metrics = {"PROMETHEUS_MULTIPROC_DIR": "{dir}"}
    out = {
        "bare": {"settings": "bench.web.settings_bare", "env": {}, "views": ["trivial", "db"]},
        "metrics": {"env": metrics, "views": ["trivial", "db"]},
        "metrics+sentry errors": {"env": {**metrics, "SENTRY_DSN": "{dsn}", "SENTRY_TRACES_SAMPLE_RATE": "0"},
                                  "views": ["trivial"]},
        "production default": {"env": {**metrics, "SENTRY_DSN": "{dsn}"}, "views": ["trivial", "db"]},
        "stock django-prometheus": {"settings": "bench.web.settings_stock", "env": metrics, "views": ["trivial"]},
    }
    if profiling_available():
        # Present and armed (a token is set, so the middleware stays in the chain), never asked:
        # the per-request cost of having it (#13: <= 1 %). Without a token it is not in the chain at all.
        out["metrics+profiling armed, off"] = {"env": {**metrics, "OBS_PROFILE_TOKEN": PROFILE_TOKEN},
                                               "views": ["trivial"]}
    if include_info:
        out["sentry traces 1% (info)"] = {"env": {**metrics, "SENTRY_DSN": "{dsn}", "SENTRY_TRACES_SAMPLE_RATE": "0.01"},
                                          "views": ["trivial"]}
    out["asgi bare"] = {"settings": "bench.web.settings_bare", "env": {}, "tier": "asgi",
                        "app": "bench.web.asgi_bare:application", "views": ["trivial"]}
    out["asgi metrics"] = {"env": metrics, "tier": "asgi", "app": "app.asgi:application", "views": ["trivial"]}
    for name, layer in out.items():
        layer.setdefault("settings", "app.settings")
        layer.setdefault("tier", "wsgi")
        layer.setdefault("app", "app.wsgi:application")
        layer["bare"] = "asgi bare" if layer["tier"] == "asgi" else "bare"
        layer["stock"] = layer["settings"] == "bench.web.settings_stock"
        layer["ours"] = layer["settings"] == "app.settings"
    return out


# Targets of #17 (ratio to the bare layer of the same tier, same round).
TARGETS = {("metrics", "trivial"): 0.95, ("production default", "trivial"): 0.93, ("metrics", "db"): 0.97,
           ("production default", "db"): 0.97, ("asgi metrics", "trivial"): 0.95}

__all__ = ["PROFILE_TOKEN", "TARGETS", "VIEWS", "layers", "profiling_available"]
