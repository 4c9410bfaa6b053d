"""Read the generated Grafana dashboards: their panels, their PromQL, ready to send to Prometheus.

    for uid, panel_id, title, expr in panel_queries():
        requests.get(f"{prometheus}/api/v1/query", params={"query": to_promql(expr)})

Reused by the integration tests that check every panel shows data against the live app.
"""

import json
import re
from pathlib import Path

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
_VARIABLE_MATCHER = re.compile(r'\s*\w+\s*=~\s*"\$\{?\w+\}?"\s*,?')


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


def panel_queries(directory=DASHBOARDS_DIR):
    """Return (dashboard uid, panel id, panel title, expr) of every Prometheus query of every panel."""
    return [
        (uid, panel["id"], panel["title"], target["expr"])
        for uid, dashboard in load_dashboards(directory).items()
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr") and not target.get("hide")
    ]


def to_promql(expr, values=None):
    """Return expr with Grafana variables replaced: globals by windows, the others by `.*` (All)."""
    values = {**GLOBAL_VARIABLES, **(values or {})}
    return _VARIABLE.sub(lambda m: values.get(m[1] or m[2], ".*"), expr)


def without_variable_matchers(expr):
    """Return expr without its `label=~"$variable"` matchers (and the braces they leave empty)."""
    expr = _VARIABLE_MATCHER.sub("", expr)
    expr = re.sub(r"\{\s*\}", "", expr)
    expr = re.sub(r",\s*\}", "}", expr)
    return " ".join(expr.split())
