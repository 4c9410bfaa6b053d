"""Read the generated Grafana dashboards: their panels, their PromQL, ready to send to Prometheus.

    for uid, panel_id, title, expr in panel_queries():
        requests.get(f"{prometheus}/api/v1/query", params={"query": to_promql(expr)})

Reused by the integration tests that check every panel shows data against the live app.
"""

import json
import re
from pathlib import Path

import promql_parser

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO / "ops" / "grafana" / "dashboards"

# What Grafana would put in place of its global variables; windows big enough for a 15 s scrape.
GLOBAL_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_OFFSET = re.compile(r"\s+offset\s+-?\d+[smhdwy]\b")


def load_dashboards(directory=DASHBOARDS_DIR):
    """Return {uid: dashboard JSON} of every dashboards/*.json."""
    dashboards = {}
    for path in sorted(Path(directory).glob("*.json")):
        data = json.loads(path.read_text())
        dashboards[data["uid"]] = data
    return dashboards


def panels(dashboard):
    """Yield every panel of a dashboard that is not a row, including those inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries_of(dashboards):
    """Return (dashboard uid, panel id, panel title, expr) of every Prometheus query of the dashboards."""
    return [
        (uid, panel["id"], panel["title"], target["expr"])
        for uid, dashboard in dashboards.items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr") and not target.get("hide")
    ]


def panel_queries(directory=DASHBOARDS_DIR):
    """Return (dashboard uid, panel id, panel title, expr) of every query of the committed dashboards."""
    return queries_of(load_dashboards(directory))


def to_promql(expr, values=None, *, offsets=True):
    """Return expr with Grafana variables replaced: globals by windows, the others by `.*` (All).

    offsets=False also drops `offset 1w` modifiers: on a stack younger than the offset the
    shifted query has no data by construction, so a data check runs it unshifted.
    """
    values = {**GLOBAL_VARIABLES, **(values or {})}
    expr = _VARIABLE.sub(lambda m: values.get(m[1] or m[2], ".*"), expr)
    return expr if offsets else _OFFSET.sub("", expr)


def has_offset(expr):
    """Return whether expr reads the past through an `offset` modifier."""
    return bool(_OFFSET.search(expr))


def _parse(expr):
    """Parse expr as PromQL; Grafana variables in label values become `<var:name>`, globals windows."""
    return promql_parser.parse(_VARIABLE.sub(
        lambda m: GLOBAL_VARIABLES.get(m[1] or m[2], f"<var:{m[1] or m[2]}>"), expr))


def selectors(expr):
    """Return [(metric name, [(label, op, value)])] of every series selector of expr, parsed as PromQL.

    Grafana variables in label values stay as `$name`; the global ones become windows.
    """
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            matchers = [(m.name, _OPS[str(m.op).rsplit(".", 1)[-1]], re.sub(r"<var:(\w+)>", r"$\1", m.value))
                        for m in node.matchers.matchers if m.name != "__name__"]
            found.append((node.name, matchers))

    _walk(_parse(expr), visit)
    return found


def aggregations(expr):
    """Return [(operator, "by" | "without" | None, [labels])] of every aggregation of expr."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.AggregateExpr):
            modifier = node.modifier
            kind = str(modifier.type).rsplit(".", 1)[-1].lower() if modifier is not None else None
            found.append((str(node.op), kind, list(modifier.labels) if modifier is not None else []))

    _walk(_parse(expr), visit)
    return found


_OPS = {"Equal": "=", "NotEqual": "!=", "Re": "=~", "NotRe": "!~"}


def _walk(node, visit):
    visit(node)
    if isinstance(node, promql_parser.VectorSelector):
        return
    if isinstance(node, promql_parser.MatrixSelector):
        _walk(node.vector_selector, visit)
        return
    for attr in ("lhs", "rhs", "expr", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, str | int | float):
            _walk(child, visit)
    for arg in getattr(node, "args", None) or []:
        _walk(arg, visit)


def without_matchers(expr):
    """Return expr's shape: no label matchers, no `by`/`on` label lists, whitespace collapsed."""
    text = to_promql(expr)
    text = re.sub(r'\{[^{}]*\}', "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", r"\1 ()", text)
    return " ".join(text.split())


# --- scope: the configured selectors and the dashboard variables on every query ----------------

SCOPE_VARIABLES = ("cluster", "namespace", "job")
# The component whose selector a metric's series must carry, by the metric's prefix.
COMPONENT_OF = (("django_", "django"), ("gunicorn_", "gunicorn"), ("celery_", "celery"), ("jobs_", "jobs"),
                ("redis_", "redis"), ("prometheus_", "prometheus"), ("alertmanager_", "alertmanager"),
                # the proxy: its access-log families (their own scrape job) before the exporter's nginx_*
                *((prefix, "nginx_log") for prefix in ("nginx_http_responses", "nginx_http_upstream_errors",
                                                       "nginx_http_client_closed", "nginx_upstream_response_seconds",
                                                       "nginx_request_seconds")),
                ("nginx_", "nginx"))
# Families recorded where the work happens, also under another component's selector: `sent` is
# counted by every producer, web processes included. Under that other selector the dashboard's
# $job variable (the exporters) does not apply, the scope variables do.
ALSO_UNDER = {"celery_task_sent_total": "django"}
# Aggregations that do not keep every group_by label, on purpose: firing alerts by name, and the
# sums across components (sent vs received), which keep group_by without `job`.
ACROSS_JOBS = {"ALERTS", "celery_task_sent_total", "celery_task_received_total"}


def component_of(metric):
    """Return the component of a metric or recording rule (`level:metric:operations`), None if unknown."""
    base = metric.split(":")[1] if ":" in metric else metric
    return next((component for prefix, component in COMPONENT_OF if base.startswith(prefix)), None)


def _matcher_set(selector):
    from django_celery_ops.monitoring import lib

    return set(lib.matchers(selector))


def scope_problems(dashboards, cfg):
    """Return what is wrong with the scoping of every panel query ([] when every series selector
    carries its component's configured selector, the common selector and the variables)."""
    variables = {(name, "=~", f"${name}") for name in SCOPE_VARIABLES}
    common = _matcher_set(cfg["common_selector"])
    problems = []
    for uid, panel_id, _title, expr in queries_of(dashboards):
        for metric, found in selectors(expr):
            found, where = set(found), f"{uid}#{panel_id} {metric}{sorted(found)}"
            if metric == "ALERTS":  # the alert's own labels; only the variables apply
                required = [variables]
            elif metric == "up":  # one selector per component: it must be one of them
                required = [_matcher_set(sel) | common | variables for sel in cfg["selectors"].values()]
            elif component_of(metric) is None:
                problems.append(f"{where}: no component (add its prefix to COMPONENT_OF)")
                continue
            else:
                own = _matcher_set(cfg["selectors"][component_of(metric)]) | common | variables
                required = [own]
                if metric in ALSO_UNDER:
                    required.append(_matcher_set(cfg["selectors"][ALSO_UNDER[metric]]) | common
                                    | (variables - {("job", "=~", "$job")}))
            if not any(option <= found for option in required):
                problems.append(f"{where}: lacks {sorted(min(required, key=lambda o: len(o - found)) - found)}")
    return problems


def aggregation_problems(dashboards, cfg):
    """Return the aggregations that drop a group_by label ([] when every `by` keeps them all)."""
    problems = []
    for uid, panel_id, _title, expr in queries_of(dashboards):
        metrics = {metric for metric, _ in selectors(expr)}
        keep = set(cfg["group_by"]) - ({"job"} if metrics & ACROSS_JOBS else set())
        for op, kind, labels in aggregations(expr):
            if metrics & {"ALERTS"}:
                continue
            if kind == "without" or set(labels) >= keep and (kind == "by" or not keep) or op in ("topk", "bottomk"):
                continue
            problems.append(f"{uid}#{panel_id} {op} {kind} {labels}: keep {sorted(keep)}")
    return problems


# The project's dashboards and the files the dashboard tests read.
GRAFANA_DIR = REPO / "ops" / "grafana"
GENERATE = GRAFANA_DIR / "generate.py"
CONFIG = REPO / "ops" / "monitoring.yml"
RULES_DIR = REPO / "ops" / "prometheus" / "rules"
UIDS = {"service-overview", "django-requests", "gunicorn-saturation", "celery-queues"}
