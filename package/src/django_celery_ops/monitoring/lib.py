"""Helpers of the rule modules: selectors and group-by lists from the config, links, durations.

    s = Selectors(cfg, "django")
    f"sum {s.by('view')} (rate(django_http_requests_total{s('status=~\"5..\"')}[5m]))"
    # -> sum by (job, view) (rate(django_http_requests_total{job="django", status=~"5.."}[5m]))
"""

import copy
import functools
import re
import textwrap
from importlib import resources

import yaml

__all__ = ["SelectorError", "Selectors", "alert", "compress", "dashboard_links", "dashboard_url", "groups",
           "human_duration", "label_names", "matchers", "record", "runbook_url"]


class SelectorError(ValueError):
    """A selector is not a comma-separated list of PromQL label matchers."""


_MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


def matchers(text):
    """Return [(label, op, value)] of a selector such as 'job="a", namespace=~"b|c"' ('' is none)."""
    found, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = _MATCHER.match(text, pos)
        if not m or m.end() == pos:
            raise SelectorError(f"cannot read label matchers from {text!r} (write them as job=\"name\", ...)")
        found.append((m[1], m[2], m[3]))
        pos = m.end()
    return found


def label_names(text):
    """Return the label names a selector matches on, in order."""
    return [name for name, _, _ in matchers(text)]


def _unique(names):
    return list(dict.fromkeys(names))


class Selectors:
    """The matchers and group-by labels of one component, as PromQL snippets."""

    def __init__(self, cfg, component):
        self.component = component
        self.own = cfg["selectors"][component].strip()
        self.common = cfg["common_selector"].strip()
        # The selector's labels are kept by every aggregation, so a recorded series still matches it.
        self.labels = _unique([*cfg["group_by"], *label_names(self.own), *label_names(self.common)])

    @property
    def text(self):
        """Return the matchers without braces: the component's selector and the common one."""
        return ", ".join(part for part in (self.own, self.common) if part)

    def __call__(self, *extra):
        """Return '{<selector>, <extra matchers>}' to put after a metric name."""
        return "{" + ", ".join(part for part in (self.text, *extra) if part) + "}"

    def keep(self, *extra):
        """Return the comma-separated labels an aggregation keeps: group_by, selector labels, extra."""
        return ", ".join(_unique([*self.labels, *extra]))

    def by(self, *extra):
        """Return 'by (<kept labels>)'."""
        return f"by ({self.keep(*extra)})"

    def on(self, *extra):
        """Return 'on (<kept labels>)' for a vector match."""
        return f"on ({self.keep(*extra)})"


# --- links ----------------------------------------------------------------------------------------

def runbook_url(cfg, alert):
    """Return the runbook URL of an alert: links.runbook_url with {alert} replaced by its name."""
    return cfg["links"]["runbook_url"].replace("{alert}", alert)


def dashboard_url(cfg, uid, panel=None):
    """Return the URL of a dashboard (uid without the configured prefix), of one panel if given."""
    url = f"{cfg['links']['grafana_base_url'].rstrip('/')}/d/{cfg['dashboards']['uid_prefix']}{uid}"
    return url if panel is None else f"{url}?viewPanel={panel}"


def panels_contract():
    """Return the dashboards of panels.yml (the panel contract shared with the dashboards)."""
    text = resources.files(__package__).joinpath("panels.yml").read_text(encoding="utf-8")
    return yaml.safe_load(text)["dashboards"]


@functools.cache
def dashboard_links():
    """Return {alert name: (dashboard uid, panel id)} from panels.yml."""
    links = {}
    for dashboard in panels_contract():
        for panel in dashboard["panels"]:
            for name in panel.get("alerts", []):
                if name in links:
                    raise ValueError(f"panels.yml: {name} links to two panels")
                links[name] = (dashboard["uid"], panel["id"])
    return links


# --- durations ------------------------------------------------------------------------------------

_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000,
            "y": 31_536_000_000}
_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "y": "year"}
_DURATION = re.compile(r"(\d+)(ms|[smhdwy])")
_RANGE = re.compile(r"\[(\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)(:[^\]]*)?\]")


def duration_ms(text):
    """Return the milliseconds of a Prometheus duration such as '1h30m'."""
    return sum(int(n) * _UNIT_MS[unit] for n, unit in _DURATION.findall(text))


def human_duration(text):
    """Return '5 minutes' for '5m', '1 hour' for '1h', '72 minutes' for '4320s' (the largest exact unit)."""
    if not re.fullmatch(r"(?:\d+(?:ms|[smhdwy]))+", text):
        return text
    ms = duration_ms(text)
    if ms % 1000:
        return f"{ms} milliseconds" if ms != 1 else "1 millisecond"
    for unit in ("y", "w", "d", "h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            n, word = ms // _UNIT_MS[unit], _UNIT_WORDS[unit]
            return f"{n} {word}" + ("" if n == 1 else "s")
    return text  # pragma: no cover - every whole second is a number of seconds


# A recorded series named after its window: ...:ratio_rate5m, ...:mean5m, ...:burn_rate1h.
_RECORDED_WINDOW = re.compile(r":\w*?(?:rate|mean|max|min|avg)(\d+[smhdwy])\b")


def _text_durations(rule):
    """Return the durations a rule's annotations may speak of: its for: and the windows its expr reads."""
    found = [rule["for"]] if "for" in rule else []
    found += [m[1] for m in _RANGE.finditer(rule["expr"])]
    found += _RECORDED_WINDOW.findall(rule["expr"])
    return list(dict.fromkeys(found))


def _compress_texts(rule, factor):
    """Rewrite the durations in words of summary and description ('for 5 minutes') to the compressed ones."""
    words = {}
    for text in _text_durations(rule):
        human = human_duration(text)
        if human != text:
            words.setdefault(human, human_duration(_compress_duration(text, factor)))
    if not words or "annotations" not in rule:
        return
    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b")
    for key in ("summary", "description"):
        if key in rule["annotations"]:
            rule["annotations"][key] = pattern.sub(lambda m: words[m[1]], rule["annotations"][key])


def _compress_duration(text, factor):
    ms = max(1, round(duration_ms(text) / factor))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def compress(groups, factor):
    """Return a copy of rule groups with every for: and every range window divided by factor.

    Durations in words in summary and description (`for 5 minutes`, `over the last 10 minutes`)
    follow: a text speaks of the rule's own for: and windows, so a compressed drill reads right.
    """
    groups = copy.deepcopy(groups)
    for group in groups:
        for rule in group["rules"]:
            _compress_texts(rule, factor)  # before expr and for change: it reads their durations
            rule["expr"] = _RANGE.sub(lambda m: f"[{_compress_duration(m[1], factor)}{m[2] or ''}]", rule["expr"])
            if "for" in rule:
                rule["for"] = _compress_duration(rule["for"], factor)
    return groups


# --- rule constructors ----------------------------------------------------------------------------

def _dedent(text):
    return textwrap.dedent(text).strip()


def record(name, expr):
    """Return a recording rule."""
    return {"record": name, "expr": _dedent(expr)}


def for_duration(cfg, name, severity):
    """Return the configured for: of an alert (per severity where the config splits it), or None."""
    value = cfg["for"].get(name)
    if isinstance(value, dict):
        value = value.get(severity)
    return value or None


def alert(cfg, name, expr, *, severity, component, summary, description):
    """Return an alert rule with its configured for:, its labels and the four annotations."""
    rule = {"alert": name, "expr": _dedent(expr)}
    duration = for_duration(cfg, name, severity)
    if duration:
        rule["for"] = duration
    rule["labels"] = {"severity": severity, "component": component}
    links = dashboard_links()
    if name not in links:
        raise ValueError(f"panels.yml: no panel lists alert {name}")
    rule["annotations"] = {"summary": summary, "description": description,
                           "runbook_url": runbook_url(cfg, name), "dashboard_url": dashboard_url(cfg, *links[name])}
    return rule


def groups(component, recording, alerting):
    """Return the rule groups of a component: '<component>.rules' (if any) then '<component>.alerts'."""
    out = [{"name": f"{component}.rules", "rules": recording}] if recording else []
    return out + [{"name": f"{component}.alerts", "rules": alerting}]


def le(seconds):
    """Return a bucket bound as client_python writes it (Go-style float: 1 -> "1.0")."""
    return repr(float(seconds))


def pct(ratio):
    """Return 0.999 as '99.9%'."""
    return f"{ratio * 100:g}%"
