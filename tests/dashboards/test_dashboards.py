"""This project's Grafana dashboards: the generator's output for ops/monitoring.yml, valid SDK models,
scoped by the configured selectors and variables, linked from every alert, coloured at the thresholds."""

import copy
import json
import re
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from django_celery_ops.monitoring import dashboards as generator
from django_celery_ops.monitoring import lib
from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from tests.support.dashboards import GENERATE, GRAFANA_DIR, REPO, UIDS
from tests.support.dashboards import (
    SCOPE_VARIABLES,
    aggregation_problems,
    component_of,
    has_offset,
    panel_queries,
    panels,
    queries_of,
    scope_problems,
    selectors,
    without_matchers,
)

DS_VARIABLE = "${datasource}"
UNIT_PANELS = {"timeseries", "stat", "table"}
NO_QUERY_PANELS = {"alertlist"}  # reads alert rules through the Prometheus datasource, no PromQL
METRICS_DOC = REPO / "docs" / "metrics.md"
# Panels whose queries read the dashboard range, as issue #12 asks (top lists and the per-task table).
RANGE_PANELS = {("celery-queues", 13), ("celery-queues", 16), ("celery-queues", 17),
                ("django-requests", 17), ("django-requests", 18)}
WEEK_OVER_WEEK_PANELS = {("django-requests", 19), ("django-requests", 20)}

# (uid, panel id) -> (config section, name, alert fires strictly above it)
ALERT_THRESHOLDS = {
    ("service-overview", 5): ("thresholds", "rule_failures_per_window", True),
    ("service-overview", 7): ("slo", "availability", False),
    ("service-overview", 8): ("slo", "latency", False),
    ("service-overview", 12): ("thresholds", "sweeper_heartbeat_age_seconds", False),
    ("service-overview", 14): ("thresholds", "upstream_error_ratio", False),
    ("service-overview", 16): ("thresholds", "request_queue_slow_ratio", False),
    ("service-overview", 21): ("thresholds", "request_queue_seconds", False),
    ("django-requests", 2): ("thresholds", "server_error_ratio", False),
    ("django-requests", 3): ("thresholds", "slow_request_ratio", False),
    ("django-requests", 4): ("slo", "latency_seconds", False),
    ("django-requests", 5): ("thresholds", "event_loop_lag_seconds", False),
    ("django-requests", 6): ("thresholds", "unapplied_migrations_count", True),
    ("django-requests", 13): ("thresholds", "client_error_ratio", False),
    ("django-requests", 14): ("thresholds", "database_errors_per_second", False),
    ("django-requests", 15): ("thresholds", "instrumentation_errors_per_window", True),
    ("django-requests", 20): ("slo", "latency_seconds", False),
    ("gunicorn-saturation", 1): ("thresholds", "gunicorn_saturation_ratio", False),
    ("gunicorn-saturation", 2): ("thresholds", "listen_backlog_connections", True),
    ("gunicorn-saturation", 3): ("thresholds", "worker_timeouts_per_window", True),
    ("gunicorn-saturation", 4): ("thresholds", "worker_crashes_per_window", True),
    ("celery-queues", 1): ("thresholds", "queue_backlog_min_messages", False),
    ("celery-queues", 2): ("thresholds", "queue_drain_budget_seconds", False),
    ("celery-queues", 5): ("thresholds", "celery_saturation_ratio", False),
    ("celery-queues", 6): ("thresholds", "task_failure_ratio", False),
    ("celery-queues", 7): ("thresholds", "time_limit_hits_per_window", True),
    ("celery-queues", 8): ("thresholds", "task_retry_ratio", False),
    ("celery-queues", 9): ("thresholds", "queue_wait_seconds", False),
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


def _expected_step(cfg, section, name, strictly_above):
    return cfg[section][name] + (0.001 if strictly_above else 0)


def _by_uid(built):
    return {data["uid"]: data for data in built.values()}


def _matchers(text):
    return [(label, op, value) for label, op, value in lib.matchers(text)]


# --- one source ------------------------------------------------------------------------------

def test_committed_dashboards_match_the_generator():
    result = subprocess.run([sys.executable, str(GENERATE), "--check"], check=False, capture_output=True,
                            text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr


def test_build_all_for_this_config_equals_the_committed_json(cfg, dashboards):
    built = generator.build_all(cfg)
    assert set(built) == {f"{uid}.json" for uid in dashboards}
    assert _by_uid(built) == dashboards


def test_every_dashboard_parses_as_the_sdk_dashboard_model(dashboards):
    plugins.register_default_plugins()
    for uid, data in dashboards.items():
        model = Dashboard.from_json(data)
        assert json.loads(json.dumps(model, cls=JSONEncoder)) == data, f"{uid}: fields the SDK model drops"
        assert model.uid == uid


# --- shape -----------------------------------------------------------------------------------

def test_the_four_dashboards_keep_their_uids_and_files(dashboards, cfg):
    assert cfg["dashboards"]["uid_prefix"] == ""  # this project's uids are the bare names
    assert set(dashboards) == UIDS
    for uid in UIDS:
        assert json.loads((GRAFANA_DIR / "dashboards" / f"{uid}.json").read_text())["uid"] == uid


def test_every_query_panel_uses_the_datasource_variable(dashboards, cfg):
    for uid, dashboard in dashboards.items():
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        assert variables["datasource"]["current"]["value"] == cfg["dashboards"]["datasource"]
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
        assert 8 <= len(content) <= 22, (uid, len(content))
        for panel in content:
            assert len(panel.get("description", "")) > 30, (uid, panel["id"], "needs a description")


# --- variables and selectors -------------------------------------------------------------------

def test_every_dashboard_has_the_datasource_and_scope_variables_in_order(dashboards, cfg):
    for uid, dashboard in dashboards.items():
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert names[:4] == ["datasource", *SCOPE_VARIABLES], (uid, names)
        for variable in dashboard["templating"]["list"][1:4]:
            # shown when the config keeps the label in its aggregations (group_by), hidden otherwise
            hidden = variable["name"] not in cfg["group_by"]
            assert (variable.get("hide", 0) == 2) == hidden, (uid, variable["name"])


def test_template_variables_match_every_value_when_all_is_selected(dashboards):
    for uid, dashboard in dashboards.items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["includeAll"] and variable["allValue"] == ".*", (uid, variable["name"])
                assert re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"]), variable


def test_variable_queries_carry_the_selectors_and_the_variables_before_them(dashboards, cfg):
    for uid, dashboard in dashboards.items():
        before = []
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            selector = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])[1]
            ((metric, found),) = selectors(selector)
            component = component_of(metric)
            required = _matchers(cfg["common_selector"])
            if component:
                required += _matchers(cfg["selectors"][component])
            required += [(name, "=~", f"${name}") for name in before if name in SCOPE_VARIABLES]
            assert set(required) <= set(found), (uid, variable["name"], found)
            before.append(variable["name"])


def test_every_panel_query_carries_the_configured_selectors_and_the_variables(dashboards, cfg):
    assert not scope_problems(dashboards, cfg)


def test_every_aggregation_keeps_the_group_by_labels(dashboards, cfg):
    assert not aggregation_problems(dashboards, cfg)


def test_queries_use_only_documented_metrics_and_recording_rules(recording_rule_names):
    doc = METRICS_DOC.read_text()
    for uid, panel_id, _title, expr in panel_queries():
        for name, _ in selectors(expr):
            if name in ("up", "ALERTS") or name.startswith(("prometheus_", "alertmanager_")):
                continue  # Prometheus' and Alertmanager's own families
            if name in recording_rule_names:
                continue
            family = re.sub(r"_(bucket|sum|count)$", "", name)  # a histogram's series
            assert any(re.search(rf"\b{re.escape(n)}\b", doc) for n in (name, family)), \
                (uid, panel_id, name, "not in docs/metrics.md")


# --- the panels issue #12 asks for -------------------------------------------------------------

def test_top_lists_and_the_per_task_table_read_the_dashboard_range(dashboards):
    for uid, panel_id in RANGE_PANELS:
        panel = _panel(dashboards, uid, panel_id)
        assert panel["type"] == "table", (uid, panel_id)
        for target in panel["targets"]:
            assert "[$__range]" in target["expr"] and target["instant"], (uid, panel_id, target["expr"])


def test_the_per_task_table_has_success_rate_counts_by_state_and_runtime_quantiles(dashboards):
    panel = _panel(dashboards, "celery-queues", 17)
    assert [t["id"] for t in panel["transformations"]] == ["merge", "organize"]
    columns = panel["transformations"][1]["options"]["renameByName"]
    assert set(columns.values()) >= {"success", "succeeded", "failed", "retried", "p50 runtime", "p95 runtime",
                                     "p99 runtime"}
    assert len(columns) == len(panel["targets"])
    by_column = {columns[f"Value #{t['refId']}"]: t["expr"] for t in panel["targets"]}
    assert by_column["success"].startswith("sum by (job, name) (increase(celery_task_succeeded_total")
    for quantile in ("0.5", "0.95", "0.99"):
        assert by_column[f"p{round(float(quantile) * 100)} runtime"].startswith(f"histogram_quantile({quantile},")


def test_sent_vs_received_db_connections_and_the_4xx_5xx_mix_have_panels(dashboards):
    metrics = {uid: {(p["id"], name) for p_uid, p_id, _, expr in queries_of(dashboards) if p_uid == uid
                     for name, _ in selectors(expr) for p in [_panel(dashboards, uid, p_id)]}
               for uid in dashboards}
    assert {(18, "celery_task_sent_total"), (18, "celery_task_received_total")} <= metrics["celery-queues"]
    assert {(21, "django_db_new_connections_total"), (21, "django_db_new_connection_errors_total"),
            (14, "django_db_errors_total"), (17, "django_http_exceptions_total_by_type_total"),
            (18, "django_http_exceptions_total_by_view_total")} <= metrics["django-requests"]
    mix = [t["expr"] for t in _panel(dashboards, "django-requests", 16)["targets"]]
    assert [re.search(r'status=~"(.)\.\."', expr)[1] for expr in mix] == ["4", "5"]


def test_week_over_week_panels_compare_with_the_same_query_a_week_earlier(dashboards):
    for uid, panel_id in WEEK_OVER_WEEK_PANELS:
        now, week_ago = (t["expr"] for t in _panel(dashboards, uid, panel_id)["targets"])
        assert not has_offset(now) and " offset 1w" in week_ago, (uid, panel_id)
        assert week_ago.replace(" offset 1w", "") == now, (uid, panel_id)


# --- the panel contract and the alert links --------------------------------------------------

def test_every_contract_panel_exists_with_its_title_and_query(dashboards, contract):
    assert set(contract) == UIDS
    titles = {d["uid"]: d["title"] for d in lib.panels_contract()}
    assert {uid: d["title"] for uid, d in dashboards.items()} == titles
    for uid, contract_panels in contract.items():
        by_id = {p["id"]: p for p in panels(dashboards[uid])}
        for panel_id, spec in contract_panels.items():
            assert panel_id in by_id, (uid, panel_id)
            panel = by_id[panel_id]
            assert panel["title"] == spec["title"], (uid, panel_id)
            # The panel shows what the alert evaluates: its first query, scoped by the selectors
            # (`up` once per distinct component selector: `up{a} or up{b}`).
            shape = without_matchers(panel["targets"][0]["expr"])
            if len(set(shape.split(" or "))) == 1:
                shape = shape.split(" or ")[0]
            assert shape == without_matchers(spec["expr"]), (uid, panel_id)


def test_every_alert_dashboard_url_resolves_to_an_existing_panel(dashboards, alert_rules):
    assert alert_rules
    for rule in alert_rules:
        url = urlsplit(rule["annotations"]["dashboard_url"])
        uid = re.fullmatch(r"/d/([\w-]+)", url.path)[1]
        panel_id = int(parse_qs(url.query)["viewPanel"][0])
        assert uid in dashboards, rule["alert"]
        assert panel_id in {p["id"] for p in panels(dashboards[uid])}, (rule["alert"], uid, panel_id)


def test_alert_panels_name_the_panel_of_each_alert_with_the_uid_prefix(cfg, dashboards):
    links = generator.alert_panels(cfg)
    assert links["CeleryWorkerDown"] == ("celery-queues", 4)
    for alert, (uid, panel_id) in links.items():
        assert panel_id in {p["id"] for p in panels(dashboards[uid])}, alert


def test_dashboards_link_the_runbooks_of_the_alerts_they_show(dashboards, contract, cfg, alert_rules):
    runbook_urls = {r["alert"]: r["annotations"]["runbook_url"] for r in alert_rules}
    for uid, contract_panels in contract.items():
        links = {link.get("url") for link in dashboards[uid]["links"]}
        for panel_id, spec in contract_panels.items():
            panel_links = {link["url"] for link in _panel(dashboards, uid, panel_id).get("links", [])}
            for name in spec["alerts"]:
                url = lib.runbook_url(cfg, name)
                assert url == runbook_urls[name], name  # the same link as the rules
                assert url in links, (uid, name)
                assert url in panel_links, (uid, panel_id, name)


# --- thresholds ------------------------------------------------------------------------------

def test_alert_panels_colour_at_the_alert_thresholds(dashboards, cfg):
    for (uid, panel_id), (section, name, strictly_above) in ALERT_THRESHOLDS.items():
        panel = _panel(dashboards, uid, panel_id)
        assert _alert_step(panel) == pytest.approx(_expected_step(cfg, section, name, strictly_above)), \
            (uid, panel_id, name)
    for uid, panel_id in BURN_RATE_PANELS:
        values = _step_values(_panel(dashboards, uid, panel_id))
        assert sorted(values) == sorted(cfg["slo"][name] for name in BURN_RATES), (uid, panel_id)


def test_thresholds_and_for_durations_are_read_from_the_config_not_copied(cfg):
    changed = copy.deepcopy(cfg)
    for section, name, _ in ALERT_THRESHOLDS.values():
        changed[section][name] = cfg[section][name] * 2 + 7
    for name in BURN_RATES:
        changed["slo"][name] = cfg["slo"][name] + 100
    changed["for"]["DjangoSlowRequests"] = "45m"
    rebuilt = _by_uid(generator.build_all(changed))
    for (uid, panel_id), (section, name, strictly_above) in ALERT_THRESHOLDS.items():
        panel = _panel(rebuilt, uid, panel_id)
        assert _alert_step(panel) == pytest.approx(_expected_step(changed, section, name, strictly_above)), \
            (uid, panel_id)
    for uid, panel_id in BURN_RATE_PANELS:
        assert min(_step_values(_panel(rebuilt, uid, panel_id))) > 100
    assert "for 45 minutes" in _panel(rebuilt, "django-requests", 3)["description"]


# --- provisioning ----------------------------------------------------------------------------

def test_provisioning_has_fixed_datasource_uids_and_the_compose_paths(dashboards, cfg):
    datasources = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "datasources.yml").read_text())
    by_type = {d["type"]: d for d in datasources["datasources"]}
    assert by_type["prometheus"]["uid"] == cfg["dashboards"]["datasource"] == "prometheus"
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
