"""The monitoring generator: Prometheus rules, PrometheusRules, Alertmanager routes, runbooks, dashboards.

    django-celery-ops-monitoring generate --config monitoring.yml --out DIR

or from Python: `cli.generate(config.load("monitoring.yml"))` returns {relative path: text}.
"""

__all__ = ["ConfigError", "load"]

from .config import ConfigError, load
