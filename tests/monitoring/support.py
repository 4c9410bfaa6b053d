"""Helpers of the monitoring generator tests: configs to generate from, and PromQL read by promql-parser.

Matchers are compared as parsed by promql-parser (the selectors of the config too), never by regex.
"""

from pathlib import Path

import promql_parser

from django_celery_ops.monitoring import config

REPO = Path(__file__).resolve().parents[2]
PROJECT_CONFIG = REPO / "ops" / "monitoring.yml"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Another application in a shared Prometheus: its own job names, a namespace, cluster scope.
SHOP = {
    "selectors": {"django": 'job="shop-web"', "gunicorn": 'job="shop-web"', "celery": 'job="shop-celery"',
                  "jobs": 'job="shop-sweeper"', "redis": 'job="shop-redis"', "prometheus": 'job="prom-shared"',
                  "alertmanager": 'job="am-shared"'},
    "common_selector": 'namespace="shop"',
    "group_by": ["cluster", "namespace", "job"],
    "components": ["gunicorn", "django", "celery", "jobs", "redis", "meta"],
    "links": {"runbook_url": "https://wiki.shop.example/display/OPS/{alert}", "grafana_base_url": "https://grafana.shop.example"},
    "dashboards": {"uid_prefix": "shop-"},
}


def configs():
    """Return {name: cfg} of the configs every generated expression is checked under."""
    return {"defaults": config.load(None), "project": config.load(PROJECT_CONFIG), "shop": config.merge(SHOP)}


def selector_matchers(text):
    """Return the set of (label, op, value) of a config selector ('' is the empty set), parsed as PromQL."""
    if not text.strip():
        return set()
    return _matchers(promql_parser.parse("{" + text + "}"))


def _matchers(selector):
    return {(m.name, str(m.op), m.value) for m in selector.matchers.matchers}


def vector_selectors(expr):
    """Return [(metric name or None, {(label, op, value)})] of every vector selector of a PromQL expression."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, _matchers(node)))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def grouping_labels(expr):
    """Return [(kind, labels)] of every aggregation's by/without and every binary on/ignoring list."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            found.append((f"{node.op} {node.modifier.type}", list(node.modifier.labels)))
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None and node.modifier.matching:
            found.append((f"{node.op} {node.modifier.matching.type}", list(node.modifier.matching.labels)))

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def all_rules(built):
    """Yield (component file, rule) of rules.build(cfg) output."""
    for component, groups in built.items():
        for group in groups:
            for rule in group["rules"]:
                yield component, rule
