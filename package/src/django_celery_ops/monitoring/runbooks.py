"""Render the runbooks (runbooks/*.md templates) with the configured links, values and selectors.

A template names config values as `{{ thresholds.slow_request_ratio }}`, `{{ slo.availability }}`,
`{{ for.DjangoSlowRequests }}` (`{{ for.DjangoLatencyBudgetBurn.critical }}`) and dashboards as
`{{ dashboard.django-requests }}` (the configured Grafana base, /d/ and the uid prefix). Its
```promql blocks are plain PromQL: every metric gets the matchers of its component (by name:
django_*, gunicorn_*, celery_*, jobs_*, redis_*, nginx_* (the access-log families: nginx_log),
prometheus_*, alertmanager_*; recorded
level:metric:operation series by their metric part) and the common selector, so a query pasted
from a runbook sees this deployment only. celery_task_sent_total is counted by every producer
(web tiers, workers, the sweeper: several jobs), so it gets the common selector alone.
"""

import re
from importlib import resources

from .lib import Selectors, dashboard_url

__all__ = ["render", "render_all", "render_query", "templates"]

INDEX = "README.md"
_VAR = re.compile(r"\{\{ ([A-Za-z_][\w.-]*) \}\}")
_FENCE = re.compile(r"(^[ \t]*```promql[^\n]*\n)(.*?)(^[ \t]*```[ \t]*$)", re.MULTILINE | re.DOTALL)
_TOKEN = re.compile(r"""
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<open>[{\[(])
  | (?P<num>\d[\w.]*)
  | (?P<ident>[A-Za-z_:][\w:]*)
  | (?P<other>[^\s])
""", re.VERBOSE | re.DOTALL)
_CLOSE = {"{": "}", "[": "]", "(": ")"}
_GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "atan2", "inf", "nan", "start", "end"}
_AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
                 "topk", "quantile", "limitk", "limit_ratio"}
_PREFIXES = ("django", "gunicorn", "celery", "jobs", "redis", "nginx", "prometheus", "alertmanager")
# The proxy's access-log families come from their own scrape job (selectors.nginx_log), not the exporter's.
_NGINX_LOG = ("nginx_http_responses", "nginx_http_upstream_errors", "nginx_http_client_closed",
              "nginx_upstream_response_seconds", "nginx_request_seconds")
_NO_SELECTOR = {"ALERTS", "ALERTS_FOR_STATE"}  # alert series carry the alert's labels, not the target's
# Series counted wherever a task is published (web tiers, workers, the sweeper): no component's
# selector, only the common one, so a query sees every producer of this deployment.
_EVERY_PRODUCER = {"celery_task_sent_total"}
_UP_COMPONENTS = {"django", "gunicorn", "celery", "jobs", "redis", "nginx"}
# Series Prometheus writes per scrape target: the runbook's component picks their selector.
_TARGET_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                  "scrape_series_added"}


def templates():
    """Return {file name: template text} of the runbook templates."""
    folder = resources.files(__package__).joinpath("runbooks")
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir(), key=lambda p: p.name)
            if p.name.endswith(".md")}


def _value(cfg, name):
    head, _, rest = name.partition(".")
    if head == "dashboard":
        return dashboard_url(cfg, rest)
    value = cfg
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"runbook template names unknown config value {name!r}")
        value = value[part]
    return str(value)


def _component_of(metric, alert_component):
    if metric in _NO_SELECTOR:
        return None
    if metric in _EVERY_PRODUCER:
        return ""
    parts = metric.split(":")
    name = parts[1] if len(parts) == 3 else metric
    if name in _TARGET_SERIES:
        return alert_component if alert_component in _UP_COMPONENTS else ""
    if name.startswith(_NGINX_LOG):
        return "nginx_log"
    prefix = name.split("_", 1)[0]
    return prefix if prefix in _PREFIXES else ""


def _skip(text, pos, opening):
    """Return the index just past the bracket that closes text[pos] (strings skipped)."""
    depth, close = 0, _CLOSE[opening]
    while pos < len(text):
        m = _TOKEN.search(text, pos)
        if not m:
            break
        pos = m.end()
        if m["open"] == opening:
            depth += 1
        elif m["other"] == close:
            depth -= 1
            if depth == 0:
                return pos
    return len(text)


def render_query(cfg, query, alert_component=""):
    """Return query with the configured matchers added to every vector selector."""
    out, pos = [], 0
    while True:
        m = _TOKEN.search(query, pos)
        if not m:
            break
        if m["open"]:
            if m["open"] in "{[":  # a matcher list without a metric name, or a range: leave as is
                end = _skip(query, m.start(), m["open"])
                out.append(query[pos:end])
                pos = end
                continue
        elif m["ident"]:
            ident, after = m["ident"], m.end()
            rest = query[after:].lstrip()
            following = rest[:1]
            if ident in _GROUPING:
                out.append(query[pos:after])
                pos = after
                if following == "(":
                    start = query.index("(", after)
                    end = _skip(query, start, "(")
                    out.append(query[pos:end])
                    pos = end
                continue
            if ident.lower() not in _KEYWORDS | _AGGREGATIONS and following != "(":
                component = _component_of(ident, alert_component)
                matchers = ""
                if component is not None:
                    own = Selectors(cfg, component).own if component else ""
                    matchers = ", ".join(p for p in (own, cfg["common_selector"].strip()) if p)
                out.append(query[pos:after])
                pos = after
                if following == "{":
                    brace = query.index("{", after)
                    end = _skip(query, brace, "{")
                    inner = query[brace + 1:end - 1]
                    joined = ", ".join(p for p in (matchers, inner.strip()) if p) if matchers else inner
                    out.append(query[pos:brace + 1] + joined + "}")
                    pos = end
                elif matchers:
                    out.append("{" + matchers + "}")
                continue
        out.append(query[pos:m.end()])
        pos = m.end()
    out.append(query[pos:])
    return "".join(out)


# A template links the project's own files relative to the repository root ("](../app/jobs/services.py)").
_SOURCE_LINK = re.compile(r"\[([^\]]*)\]\(\.\./([^)\s]+)\)")


def _source_links(cfg, text):
    """Point the links to project files at links.source_url, or keep their text unlinked when it is ''."""
    source = cfg["links"].get("source_url", "")
    if source:
        return _SOURCE_LINK.sub(lambda m: f"[{m[1]}]({source.format(path=m[2])})", text)
    return _SOURCE_LINK.sub(lambda m: m[1], text)


def render(cfg, text, alert_component=""):
    """Return one runbook: config values filled in, matchers added to its PromQL, project links resolved."""
    text = _source_links(cfg, _VAR.sub(lambda m: _value(cfg, m[1]), text))
    return _FENCE.sub(lambda m: m[1] + render_query(cfg, m[2], alert_component) + m[3], text)


_INDEX_ROW = re.compile(r"^\|[^|\n]*\| \[(\w+)\]\(\1\.md\) \|.*\n", re.MULTILINE)


def _index(text, alerts):
    """Drop the index rows of alerts the config does not generate (their pages are not written)."""
    return _INDEX_ROW.sub(lambda m: m[0] if m[1] in alerts else "", text)


def render_all(cfg, components_by_alert):
    """Return {file name: Markdown} for the alerts generated (components_by_alert) and the index."""
    out = {}
    for name, text in templates().items():
        alert = name[:-3]
        if name == INDEX:
            out[name] = _index(render(cfg, text), components_by_alert)
        elif alert in components_by_alert:
            out[name] = render(cfg, text, components_by_alert[alert])
    return out
