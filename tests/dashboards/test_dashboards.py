"""The Grafana dashboards: generated from one source, valid SDK models, linked from every alert, honest."""

import json
import os
import re
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.dashboards.conftest import GENERATE, GRAFANA_DIR, REPO, UIDS
from tests.support.dashboards import panel_queries, panels, without_variable_matchers

DS_VARIABLE = "${datasource}"
UNIT_PANELS = {"timeseries", "stat", "table"}
NO_QUERY_PANELS = {"alertlist"}  # reads alert rules through the Prometheus datasource, no PromQL
METRICS_DOC = REPO / "docs" / "metrics.md"
SELF_METRICS = ("prometheus_", "alertmanager_")  # Prometheus' and Alertmanager's own families

# (uid, panel id) -> (threshold name in thresholds.py, alert fires strictly above it)
ALERT_THRESHOLDS = {
    ("service-overview", 5): ("rule_failures_per_window", True),
    ("service-overview", 7): ("availability_slo_ratio", False),
    ("service-overview", 8): ("latency_slo_ratio", False),
    ("django-requests", 2): ("server_error_ratio", False),
    ("django-requests", 3): ("slow_request_ratio", False),
    ("django-requests", 4): ("slow_request_seconds", False),
    ("django-requests", 5): ("event_loop_lag_seconds", False),
    ("django-requests", 6): ("unapplied_migrations_count", True),
    ("django-requests", 13): ("client_error_ratio", False),
    ("django-requests", 14): ("database_errors_per_second", False),
    ("django-requests", 15): ("instrumentation_errors_per_window", True),
    ("service-overview", 12): ("sweeper_heartbeat_age_seconds", False),
    ("gunicorn-saturation", 1): ("gunicorn_saturation_ratio", False),
    ("gunicorn-saturation", 2): ("listen_backlog_connections", True),
    ("gunicorn-saturation", 3): ("worker_timeouts_per_window", True),
    ("gunicorn-saturation", 4): ("worker_crashes_per_window", True),
    ("celery-queues", 1): ("queue_backlog_min_messages", False),
    ("celery-queues", 2): ("queue_drain_budget_seconds", False),
    ("celery-queues", 5): ("celery_saturation_ratio", False),
    ("celery-queues", 6): ("task_failure_ratio", False),
    ("celery-queues", 7): ("time_limit_hits_per_window", True),
    ("celery-queues", 8): ("task_retry_ratio", False),
    ("celery-queues", 9): ("queue_wait_seconds", False),
}
BURN_RATE_PANELS = {("service-overview", 1), ("service-overview", 2)}
BURN_RATES = ("page_1h_burn_rate", "page_6h_burn_rate", "ticket_1d_burn_rate", "ticket_3d_burn_rate")


def _panel(dashboards, uid, panel_id):
    return next(p for p in panels(dashboards[uid]) if p["id"] == panel_id)


def _step_values(panel):
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"] if s["value"] is not None]


def _alert_step(panel):
    """Return the step where the colour changes between healthy (green) and alerting (red)."""
    values = _step_values(panel)
    assert len(values) == 1, (panel["id"], values)
    return values[0]


def _expected_step(thresholds, name, strictly_above):
    return getattr(thresholds, name) + (0.001 if strictly_above else 0)


# --- one source ------------------------------------------------------------------------------

def test_committed_dashboards_match_the_generator():
    env = {k: v for k, v in os.environ.items() if k != "RUNBOOK_BASE_URL"}
    result = subprocess.run([sys.executable, str(GENERATE), "--check"], check=False, capture_output=True, text=True,
                            env=env, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr


def test_generator_output_equals_the_committed_json(generator, dashboards, monkeypatch):
    monkeypatch.delenv("RUNBOOK_BASE_URL", raising=False)
    built = {uid: generator.to_json(model) for uid, model in generator.build().items()}
    assert built == dashboards


def test_every_dashboard_parses_as_the_sdk_dashboard_model(dashboards):
    plugins.register_default_plugins()
    for uid, data in dashboards.items():
        model = Dashboard.from_json(data)
        assert json.loads(json.dumps(model, cls=JSONEncoder)) == data, f"{uid}: fields the SDK model drops"
        assert model.uid == uid


# --- shape -----------------------------------------------------------------------------------

def test_the_four_dashboards_keep_their_uids_and_files(dashboards):
    assert set(dashboards) == UIDS
    for uid in UIDS:
        assert json.loads((GRAFANA_DIR / "dashboards" / f"{uid}.json").read_text())["uid"] == uid


def test_every_query_panel_uses_the_datasource_variable(dashboards):
    for uid, dashboard in dashboards.items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for variable in variables.values():
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == DS_VARIABLE, (uid, variable["name"])
        for panel in panels(dashboard):
            if panel["type"] in NO_QUERY_PANELS:
                assert not panel.get("targets"), (uid, panel["id"])
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": DS_VARIABLE}, (uid, panel["id"])
            assert panel["targets"], (uid, panel["id"])
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == DS_VARIABLE, (uid, panel["id"])


def test_every_timeseries_stat_and_table_panel_has_a_unit(dashboards):
    for uid, dashboard in dashboards.items():
        for panel in panels(dashboard):
            if panel["type"] in UNIT_PANELS:
                assert panel["fieldConfig"]["defaults"].get("unit"), (uid, panel["id"], panel["title"])


def test_panels_are_grouped_in_rows_described_and_not_bloated(dashboards):
    for uid, dashboard in dashboards.items():
        assert dashboard["panels"][0]["type"] == "row", uid
        ids = [p["id"] for p in dashboard["panels"]] + [p["id"] for r in dashboard["panels"]
                                                          for p in r.get("panels", [])]
        assert len(ids) == len(set(ids)), f"{uid}: duplicate panel ids"
        content = list(panels(dashboard))
        assert 8 <= len(content) <= 15, (uid, len(content))
        for panel in content:
            assert len(panel.get("description", "")) > 30, (uid, panel["id"], "needs a description")


def test_template_variables_match_every_value_when_all_is_selected(dashboards):
    for uid, dashboard in dashboards.items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["includeAll"] and variable["allValue"] == ".*", (uid, variable["name"])
                assert re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"]), variable


def test_queries_use_only_documented_metrics_and_recording_rules(recording_rule_names):
    doc = METRICS_DOC.read_text()
    for uid, panel_id, _title, expr in panel_queries():
        text = re.sub(r'"[^"]*"', "", expr)  # label values
        text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)  # label lists
        text = re.sub(r"\{[^}]*\}", "", text)  # matchers
        text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
        for name in re.findall(r"[A-Za-z_:][\w:]*(?![\w:]*\s*\()", text):
            if name in ("or", "and", "unless", "up", "ALERTS") or name.startswith(SELF_METRICS):
                continue
            if name in recording_rule_names:
                continue
            family = re.sub(r"_(bucket|sum|count)$", "", name)  # a histogram's series
            assert any(re.search(rf"\b{re.escape(n)}\b", doc) for n in (name, family)), \
                (uid, panel_id, name, "not in docs/metrics.md")


# --- the panel contract and the alert links --------------------------------------------------

def test_every_contract_panel_exists_with_its_title_and_query(dashboards, contract):
    assert set(contract) == UIDS
    titles = {d["uid"]: d["title"] for d in yaml.safe_load((GRAFANA_DIR / "panels.yml").read_text())["dashboards"]}
    assert {uid: d["title"] for uid, d in dashboards.items()} == titles
    for uid, contract_panels in contract.items():
        by_id = {p["id"]: p for p in panels(dashboards[uid])}
        for panel_id, spec in contract_panels.items():
            assert panel_id in by_id, (uid, panel_id)
            panel = by_id[panel_id]
            assert panel["title"] == spec["title"], (uid, panel_id)
            # The panel shows what the alert evaluates: its first query, without the variable filters.
            assert without_variable_matchers(panel["targets"][0]["expr"]) == " ".join(spec["expr"].split()), \
                (uid, panel_id)


def test_every_alert_dashboard_url_resolves_to_an_existing_panel(dashboards, alert_rules):
    assert alert_rules
    for rule in alert_rules:
        url = urlsplit(rule["annotations"]["dashboard_url"])
        uid = re.fullmatch(r"/d/([\w-]+)", url.path)[1]
        panel_id = int(parse_qs(url.query)["viewPanel"][0])
        assert uid in dashboards, rule["alert"]
        assert panel_id in {p["id"] for p in panels(dashboards[uid])}, (rule["alert"], uid, panel_id)


def test_dashboards_link_the_runbooks_of_the_alerts_they_show(dashboards, contract, thresholds, alert_rules):
    runbook_urls = {r["alert"]: r["annotations"]["runbook_url"] for r in alert_rules}
    for uid, contract_panels in contract.items():
        links = {link.get("url") for link in dashboards[uid]["links"]}
        for panel_id, spec in contract_panels.items():
            panel_links = {link["url"] for link in _panel(dashboards, uid, panel_id).get("links", [])}
            for name in spec["alerts"]:
                url = f"{thresholds.runbook_base_url.rstrip('/')}/{name}.md"
                assert url == runbook_urls[name], name  # the same base as the rule generator
                assert url in links, (uid, name)
                assert url in panel_links, (uid, panel_id, name)


# --- thresholds ------------------------------------------------------------------------------

def test_alert_panels_colour_at_the_alert_thresholds(dashboards, thresholds):
    for (uid, panel_id), (name, strictly_above) in ALERT_THRESHOLDS.items():
        panel = _panel(dashboards, uid, panel_id)
        expected = _expected_step(thresholds, name, strictly_above)
        assert _alert_step(panel) == pytest.approx(expected), (uid, panel_id, name)
    for uid, panel_id in BURN_RATE_PANELS:
        values = _step_values(_panel(dashboards, uid, panel_id))
        assert sorted(values) == sorted(getattr(thresholds, name) for name in BURN_RATES), (uid, panel_id)


def test_thresholds_are_read_from_the_thresholds_module_not_copied(generator, thresholds, monkeypatch):
    for name, _ in ALERT_THRESHOLDS.values():
        monkeypatch.setattr(thresholds, name, getattr(thresholds, name) * 2 + 7)
    for name in BURN_RATES:
        monkeypatch.setattr(thresholds, name, getattr(thresholds, name) + 100)
    rebuilt = {uid: generator.to_json(model) for uid, model in generator.build().items()}
    for (uid, panel_id), (name, strictly_above) in ALERT_THRESHOLDS.items():
        panel = _panel(rebuilt, uid, panel_id)
        assert _alert_step(panel) == pytest.approx(_expected_step(thresholds, name, strictly_above)), (uid, panel_id)
    for uid, panel_id in BURN_RATE_PANELS:
        assert min(_step_values(_panel(rebuilt, uid, panel_id))) > 100


# --- provisioning ----------------------------------------------------------------------------

def test_provisioning_has_fixed_datasource_uids_and_the_compose_paths(dashboards):
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml").read_text())
    by_type = {d["type"]: d for d in datasources["datasources"]}
    assert by_type["prometheus"]["uid"] == "prometheus"
    assert by_type["prometheus"]["url"] == "http://prometheus:9090"
    assert by_type["prometheus"]["jsonData"]["alertmanagerUid"] == by_type["alertmanager"]["uid"] == "alertmanager"
    assert by_type["alertmanager"]["url"] == "http://alertmanager:9093"
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    for uid, dashboard in dashboards.items():
        variable = next(v for v in dashboard["templating"]["list"] if v["name"] == "datasource")
        assert variable["current"]["value"] == by_type["prometheus"]["uid"], uid
        for panel in panels(dashboard):
            if panel["type"] == "alertlist":
                assert panel["options"]["datasource"] == by_type["prometheus"]["name"], (uid, panel["id"])


def test_panel_queries_lists_every_query_of_every_panel(dashboards):
    queries = panel_queries()
    assert {uid for uid, *_ in queries} == UIDS
    expected = sum(len(p.get("targets", [])) for d in dashboards.values() for p in panels(d))
    assert len(queries) == expected
    assert all(isinstance(panel_id, int) and title and expr for _, panel_id, title, expr in queries)
