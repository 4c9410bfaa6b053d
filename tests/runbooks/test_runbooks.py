"""The runbooks follow the alert rules: one per alert, the same shape, links that resolve, numbers that agree."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.ops.procs import REPO
from tests.support.runbooks import (
    INDEX,
    PLACEHOLDERS,
    RUNBOOKS_DIR,
    SECTIONS,
    code_blocks,
    headings,
    links,
    placeholders,
    raw_queries,
    runbook_paths,
    section,
)

ALERTS = sorted(runbook_paths())
MARKDOWN_FILES = sorted(RUNBOOKS_DIR.glob("*.md"))
# Words that name one of the article's code patterns; a Mitigation using one links to the code.
CODE_PATTERN = re.compile(r"offload|\basync|time-?outs?\b|backoff|idempoten|rate[ -]limit", re.IGNORECASE)
HOST_OR_PORT = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|localhost|:\d{2,5}\b")
THRESHOLD_QUOTE = re.compile(r"`([a-z][a-z0-9_.]*)` = (-?\d+(?:\.\d+)?)")


def _is_external(target):
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None


def _relative_targets(path):
    """(link text, resolved file) of every relative link of a Markdown file, anchors dropped."""
    found = []
    for text, target in links(path.read_text()):
        if _is_external(target) or target.startswith("#"):
            continue
        found.append((text, (path.parent / target.split("#", 1)[0]).resolve()))
    return found


def _dashboard_links(text, base):
    return [t for _, t in links(text) if _is_external(t) and "/d/" in t] if base else []


# --- one runbook per alert ----------------------------------------------------------------------

def test_every_alert_rule_has_a_runbook_and_every_runbook_an_alert(rules_by_alert, runbooks):
    assert set(runbooks) == set(rules_by_alert), (
        f"alerts without a runbook: {sorted(set(rules_by_alert) - set(runbooks))}; "
        f"runbooks without an alert: {sorted(set(runbooks) - set(rules_by_alert))}")


def test_runbooks_are_exactly_the_alert_catalog(catalog, runbooks):
    assert sorted(runbooks) == sorted(catalog)


def test_every_runbook_url_annotation_is_the_configured_link_of_a_runbook_that_exists(alert_rules, monitoring_config):
    """links.runbook_url (any host, {alert} = the name) of this project's config; the page itself is generated here."""
    template = monitoring_config["links"]["runbook_url"]
    for rule in alert_rules:
        url = rule["annotations"]["runbook_url"]
        assert url == template.replace("{alert}", rule["alert"]), (rule["alert"], url)
        assert (RUNBOOKS_DIR / f"{rule['alert']}.md").is_file(), rule["alert"]


# --- the prometheus-operator runbook shape --------------------------------------------------------

@pytest.mark.parametrize("alert", ALERTS)
def test_runbook_title_is_the_alert_name(alert, runbooks):
    first = runbooks[alert].lstrip().splitlines()[0]
    assert first == f"# {alert}"
    assert headings(runbooks[alert], 1) == [alert], "exactly one level-1 heading"


@pytest.mark.parametrize("alert", ALERTS)
def test_runbook_has_meaning_impact_diagnosis_mitigation_in_order(alert, runbooks):
    assert tuple(headings(runbooks[alert], 2)) == SECTIONS


@pytest.mark.parametrize("alert", ALERTS)
def test_runbook_ends_with_a_confirm_the_fix_step_with_a_query(alert, runbooks):
    mitigation = section(runbooks[alert], "Mitigation")
    steps = headings(mitigation, 3)
    assert steps and steps[-1] == "Confirm the fix", steps
    last = mitigation.split("### Confirm the fix", 1)[1]
    assert code_blocks(last, "promql"), "the last step names the series that returns to normal"


@pytest.mark.parametrize("alert", ALERTS)
def test_diagnosis_has_queries_and_commands_to_paste(alert, runbooks):
    diagnosis = section(runbooks[alert], "Diagnosis")
    assert code_blocks(diagnosis, "promql"), "Diagnosis needs at least one ```promql block"
    assert code_blocks(diagnosis, "sh"), "Diagnosis needs at least one ```sh block"


@pytest.mark.parametrize("alert", ALERTS)
def test_meaning_states_the_for_duration_of_each_rule(alert, runbooks, rules_by_alert):
    meaning = section(runbooks[alert], "Meaning")
    for rule in rules_by_alert[alert]:
        if "for" in rule:
            assert f"`{rule['for']}`" in meaning, f"Meaning should say `{rule['for']}` ({rule['labels']['severity']})"


@pytest.mark.parametrize("alert", ALERTS)
def test_meaning_names_the_severity_of_each_rule(alert, runbooks, rules_by_alert):
    meaning = section(runbooks[alert], "Meaning")
    for rule in rules_by_alert[alert]:
        assert f"`{rule['labels']['severity']}`" in meaning, rule["labels"]["severity"]


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.name)
def test_threshold_values_quoted_in_runbooks_equal_the_monitoring_config(path, thresholds):
    names = set(thresholds)
    suffixes = {n.rsplit("_", 1)[-1] for n in names}  # ratio, seconds, window, ...: the unit-suffixed names
    quoted = THRESHOLD_QUOTE.findall(path.read_text())
    for name, value in quoted:
        if name not in names and name.rsplit("_", 1)[-1] not in suffixes and not name.startswith("slo."):
            continue  # a metric with its value (`celery_worker_up` = 0), not a threshold
        assert name in names, f"`{name}` is not a threshold of the monitoring config"
        assert float(value) == float(thresholds[name]), (name, value, thresholds[name])


# --- PromQL: placeholders, no addresses ----------------------------------------------------------------

@pytest.mark.parametrize("alert,query", raw_queries(), ids=lambda v: str(v)[:50])
def test_promql_placeholders_are_known_and_used_as_regex_matchers_of_their_label(alert, query):
    for name in placeholders(query):
        assert name in PLACEHOLDERS, f"${name} is not one of {sorted(PLACEHOLDERS)}"
        label = PLACEHOLDERS[name]
        matchers = re.findall(rf'\b{label}\s*=~\s*"\${name}"', query)
        assert len(matchers) == query.count(f"${name}"), f'write every ${name} as {label}=~"${name}"'


@pytest.mark.parametrize("alert,query", raw_queries(), ids=lambda v: str(v)[:50])
def test_promql_names_no_host_or_port(alert, query):
    assert not HOST_OR_PORT.search(query), query


# --- links --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alert", ALERTS)
def test_runbook_links_the_panel_its_alert_points_at(alert, runbooks, rules_by_alert):
    targets = {t for _, t in links(runbooks[alert])}
    for rule in rules_by_alert[alert]:
        assert rule["annotations"]["dashboard_url"] in targets, rule["annotations"]["dashboard_url"]


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.name)
def test_dashboard_links_resolve_to_an_existing_uid_and_panel(path, monitoring_config, dashboard_panels):
    base = monitoring_config["links"]["grafana_base_url"].rstrip("/")
    for target in _dashboard_links(path.read_text(), base):
        assert target.startswith(f"{base}/d/"), f"{target}: use links.grafana_base_url ({base})"
        url = urlsplit(target)
        uid = url.path.split("/d/", 1)[1].split("/")[0]
        assert uid in dashboard_panels, f"{target}: no dashboard with uid {uid!r}"
        for panel in parse_qs(url.query).get("viewPanel", []):
            assert int(panel) in dashboard_panels[uid], f"{target}: dashboard {uid} has no panel {panel}"


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.name)
def test_relative_links_resolve_to_repository_files(path):
    for text, resolved in _relative_targets(path):
        assert resolved.exists(), f"[{text}] -> {resolved} does not exist"
        assert resolved.is_relative_to(REPO), f"[{text}] -> {resolved} leaves the repository"


@pytest.mark.parametrize("path", MARKDOWN_FILES, ids=lambda p: p.name)
def test_code_names_in_link_texts_exist_in_the_linked_file(path):
    for text, resolved in _relative_targets(path):
        if resolved.suffix != ".py" or not resolved.is_file():
            continue
        source = resolved.read_text()
        for name in re.findall(r"`([A-Za-z_][\w.]*)`", text):
            identifier = name.rsplit(".", 1)[-1]
            if identifier == resolved.stem or identifier == resolved.name.rsplit(".", 1)[0]:
                continue
            assert re.search(rf"\b{re.escape(identifier)}\b", source), f"`{name}` not found in {resolved.name}"


@pytest.mark.parametrize("alert", ALERTS)
def test_mitigation_naming_a_code_pattern_links_to_the_code_that_does_it(alert, runbooks):
    mitigation = section(runbooks[alert], "Mitigation")
    words = sorted({m.lower() for m in CODE_PATTERN.findall(mitigation)})
    if not words:
        return
    path = RUNBOOKS_DIR / f"{alert}.md"
    code = [r for _, r in _relative_targets_in(mitigation, path)
            if r.is_relative_to(REPO / "app") or r.is_relative_to(REPO / "package" / "src") or r == REPO / "gunicorn.conf.py"]
    assert code, f"Mitigation mentions {words} but links nothing under app/, package/src/ or gunicorn.conf.py"


def _relative_targets_in(text, path):
    return [(t, (path.parent / target.split("#", 1)[0]).resolve())
            for t, target in links(text) if not _is_external(target) and not target.startswith("#")]


# --- the index ----------------------------------------------------------------------------------------

def test_index_lists_every_runbook_with_its_component_and_severities(rules_by_alert):
    index = (RUNBOOKS_DIR / INDEX).read_text()
    rows = {}
    for line in index.splitlines():
        m = re.match(r"^\|\s*`?([\w-]+)`?\s*\|\s*\[(\w+)\]\((\w+)\.md\)\s*\|\s*([^|]+)\|", line)
        if m:
            component, alert, target, severities = m.groups()
            assert alert == target, line
            rows[alert] = (component, {s.strip(" `") for s in severities.split(",")})
    assert set(rows) == set(rules_by_alert), "the index table lists every alert once"
    for alert, rules in rules_by_alert.items():
        expected = ({r["labels"]["component"] for r in rules}.pop(), {r["labels"]["severity"] for r in rules})
        assert rows[alert] == expected, (alert, rows[alert], expected)
