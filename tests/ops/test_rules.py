"""The Prometheus rules: generated from one source (ops/monitoring.yml), valid, tested by promtool, complete, linked."""

import re
import sys
from collections import Counter
from urllib.parse import parse_qs, urlsplit

import promql_parser
import yaml

from django_celery_ops.monitoring import lib
from tests.ops.helpers import HERE, PROMTOOL_TESTS_DIR, RULES_DIR, components, project_config, run
from tests.ops.procs import PROMETHEUS_DIR, PROMETHEUS_JOBS, REPO

GENERATE = PROMETHEUS_DIR / "generate.py"
SEVERITY_RECEIVERS = {"critical", "warning", "none"}
ALERT_COMPONENTS = {"gunicorn", "django", "celery", "jobs", "redis", "nginx", "prometheus", "alertmanager", "meta"}
SLO_ALERTS = {"DjangoAvailabilityBudgetBurn", "DjangoLatencyBudgetBurn"}
# DESIGN.md rows not built yet: no rule, no runbook (the proxy tier's alerts landed with rules/nginx.py).
PLANNED = set()
# Alerts beyond DESIGN.md's table (alert_catalog.txt), one line each with why.
BEYOND_DESIGN = {
    "RedisExporterDown": "only the Redis exporter died: a ticket, not RedisDown's false page (#16)",
    "PrometheusTargetScrapeSlow": "scrapes near their scrape_timeout: a ticket before the target goes down (#21)",
}
COMPONENTS = components()


def _constant_valued(expr):
    """True when every branch of an alert expression ends in `== <number>`: its value never changes."""
    def constant(node):
        if isinstance(node, promql_parser.ParenExpr):
            return constant(node.expr)
        if isinstance(node, promql_parser.BinaryExpr):
            op = str(node.op)
            if op in ("or", "unless", "and"):
                return constant(node.lhs) and (op != "or" or constant(node.rhs))
            return op == "==" and isinstance(node.rhs, promql_parser.NumberLiteral)
        return False
    return constant(promql_parser.parse(expr))


def test_constant_valued_tells_a_value_from_a_state():
    assert _constant_valued("up == 0") and _constant_valued("max by (job) (a) == 0 or b == 0")
    assert not _constant_valued("a > 3") and not _constant_valued("a == 0 or b > 1")


def _promtool_cases():
    """Yield (file, alertname, eval_time, exp_alerts) of every alert_rule_test."""
    for path in sorted(PROMTOOL_TESTS_DIR.glob("*.yml")):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                yield path.name, case["alertname"], case["eval_time"], case.get("exp_alerts") or []


def test_committed_rules_match_the_generator():
    result = run(sys.executable, GENERATE, "--check")
    assert result.returncode == 0, result.stderr


def test_rules_pass_promtool_lint():
    result = run("promtool", "check", "rules", "--lint=all", "--lint-fatal", *sorted(RULES_DIR.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid():
    result = run("promtool", "check", "config", PROMETHEUS_DIR / "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    result = run("promtool", "test", "rules", *sorted(PROMTOOL_TESTS_DIR.glob("*.yml")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_one_rule_file_and_one_promtool_test_file_per_component():
    assert sorted(p.stem for p in RULES_DIR.glob("*.yml")) == sorted(COMPONENTS)
    for component in COMPONENTS:
        test_file = yaml.safe_load((PROMTOOL_TESTS_DIR / f"{component}.yml").read_text())
        assert test_file["rule_files"] == [f"../rules/{component}.yml"]


def test_alert_names_are_the_contract_of_alert_catalog_txt(catalog):
    """The generator's catalog keeps every contracted name (DESIGN.md's table, copied in alert_catalog.txt)."""
    lines = [line.strip() for line in (HERE / "alert_catalog.txt").read_text().splitlines()]
    contract = [n for n in lines if n and not n.startswith("#")]
    assert sorted(catalog) == sorted([*contract, *BEYOND_DESIGN])
    assert len(set(catalog)) == len(catalog) and not PLANNED & set(catalog)


def test_every_catalog_alert_is_defined_exactly_once_per_severity(catalog, alert_rules):
    defined = Counter((r["alert"], r["labels"]["severity"]) for r in alert_rules)
    assert {name for name, _ in defined} == set(catalog)
    assert all(count == 1 for count in defined.values()), defined
    for name in catalog:
        severities = {sev for (alert, sev) in defined if alert == name}
        # SLO alerts: a page rule and a ticket rule (multiwindow multi-burn-rate); others: one rule.
        expected = 2 if name in SLO_ALERTS else 1
        assert len(severities) == expected, (name, severities)
    assert {sev for (alert, sev) in defined if alert in SLO_ALERTS} == {"critical", "warning"}


def test_alerts_carry_severity_component_and_the_four_annotations(alert_rules):
    for rule in alert_rules:
        name, labels, annotations = rule["alert"], rule["labels"], rule["annotations"]
        assert labels["severity"] in SEVERITY_RECEIVERS, name
        assert (labels["severity"] == "none") == (name == "Watchdog"), name
        assert labels["component"] in ALERT_COMPONENTS, name
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}, name
        if name != "Watchdog":  # the heartbeat has no value to report
            # the live value where there is one; an alert whose value is always the same (`== 0`)
            # must not print it ("up = 0" says nothing)
            assert ("$value" in annotations["description"]) != _constant_valued(rule["expr"]), name
            assert "$labels." in annotations["summary"] + annotations["description"], name


def test_every_alert_has_a_firing_and_a_quiet_promtool_case_per_severity(alert_rules):
    """Keyed by (alert, severity): a case where only the ticket fires is a quiet case of the page."""
    severities = {}
    for rule in alert_rules:
        severities.setdefault(rule["alert"], set()).add(rule["labels"]["severity"])
    fired, quiet = set(), set()
    for _file, alertname, _t, exp_alerts in _promtool_cases():
        for a in exp_alerts:  # asserted exactly: every label and all four annotations
            assert {"severity", "component"} <= set(a["exp_labels"]), alertname
            assert set(a["exp_annotations"]) == {"summary", "description", "runbook_url", "dashboard_url"}
        firing = {a["exp_labels"]["severity"] for a in exp_alerts}
        assert firing <= severities.get(alertname, set()), (alertname, firing)
        fired.update((alertname, s) for s in firing)
        quiet.update((alertname, s) for s in severities.get(alertname, set()) - firing)
    for rule in alert_rules:
        key = (rule["alert"], rule["labels"]["severity"])
        assert key in fired, f"{rule['alert']} ({key[1]}) never fires in a test"
        if rule["alert"] != "Watchdog":  # always firing by design; its silence is the signal
            assert key in quiet, f"{rule['alert']} ({key[1]}) has no case where it must stay quiet"


def test_quiet_cases_are_keyed_by_severity():
    """A case expecting only the ticket of an SLO alert proves the page quiet, not the ticket."""
    cases = [(name, {a["exp_labels"]["severity"] for a in exp}) for _f, name, _t, exp in _promtool_cases()
             if name in SLO_ALERTS]
    assert any(s == {"warning"} for _, s in cases), "no case where the ticket fires and the page stays quiet"


def test_runbook_url_is_the_configured_template_with_the_alert_name(alert_rules):
    """links.runbook_url of ops/monitoring.yml, any host; with this project's repository template the file exists."""
    template = project_config()["links"]["runbook_url"]
    for rule in alert_rules:
        url = rule["annotations"]["runbook_url"]
        assert url == template.replace("{alert}", rule["alert"]), (rule["alert"], url)
        if template.endswith("/runbooks/{alert}.md"):
            assert (REPO / "runbooks" / f"{rule['alert']}.md").is_file(), rule["alert"]


def test_dashboard_url_points_at_a_panel_of_panels_yml(alert_rules, panels):
    for rule in alert_rules:
        url = urlsplit(rule["annotations"]["dashboard_url"])
        uid = re.fullmatch(r"/d/([\w-]+)", url.path)[1]
        panel_id = int(parse_qs(url.query)["viewPanel"][0])
        assert (uid, panel_id) in panels, rule["alert"]
        assert rule["alert"] in panels[(uid, panel_id)]["alerts"], rule["alert"]


def test_panel_ids_are_unique_per_dashboard_and_uids_stable(panels):
    assert {uid for uid, _ in panels} == {"service-overview", "django-requests", "gunicorn-saturation",
                                          "celery-queues"}
    assert all(isinstance(panel_id, int) for _, panel_id in panels)


def test_expressions_name_no_host_or_port(alert_rules, recording_rules):
    host_port = re.compile(r"\b(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|[a-z][\w-]*(?:\.[\w-]+)+)(?::\d+)?\b|:\d{2,5}\b")
    for rule in alert_rules + recording_rules:
        expr = re.sub(r"\[[^\]]*\]", "", rule["expr"])  # range windows such as [5m] are not addresses
        assert not host_port.search(expr), rule["expr"]
        assert "instance=" not in expr and "instance=~" not in expr, rule["expr"]


def test_recording_rules_follow_level_metric_operations(rule_files, recording_rules):
    for component, content in rule_files.items():
        for group in content["groups"]:
            kinds = {"record" if "record" in r else "alert" for r in group["rules"]}
            assert group["name"] == f"{component}.{'rules' if kinds == {'record'} else 'alerts'}", group["name"]
    for rule in recording_rules:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_recording_rules_are_documented_in_metrics_md(recording_rules):
    doc = (REPO / "docs" / "metrics.md").read_text().split("## Recording rules", 1)
    assert len(doc) == 2, "docs/metrics.md has no 'Recording rules' section"
    for rule in recording_rules:
        name = re.sub(r"(rate|burn_rate)(5m|30m|1h|2h|6h|1d|3d)$", r"\1<window>", rule["record"])
        assert rule["record"] in doc[1] or name in doc[1], rule["record"]


def test_thresholds_have_unit_suffixed_names():
    cfg = project_config()
    names = [*cfg["thresholds"], *(n for n, v in cfg["slo"].items()
                                    if n not in ("availability", "latency") and not isinstance(v, list)),
             *cfg["links"]]
    units = ("_ratio", "_seconds", "_messages", "_connections", "_count", "_per_window", "_per_second",
             "_burn_rate", "_url")
    assert names and all(n.endswith(units) for n in names), names


def test_prometheus_retention_covers_the_slo_window():
    """A 30-day error budget needs 30 days of data, on both stacks (docs/oncall.md, "Retention")."""
    procfile = (REPO / "ops" / "Procfile").read_text()
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["prometheus"]["command"]
    for where, text in (("ops/Procfile", procfile), ("docker-compose.yml", " ".join(compose))):
        found = re.search(r"--storage\.tsdb\.retention\.time=(\w+)", text)
        assert found, f"{where}: no --storage.tsdb.retention.time (Prometheus' default is 15 days)"
        assert lib.duration_ms(found[1]) >= 30 * 86_400_000, f"{where}: {found[1]} is shorter than the 30-day SLO window"


def test_prometheus_config_keeps_addresses_in_targets_files():
    config_text = (PROMETHEUS_DIR / "prometheus.yml").read_text()
    assert not re.search(r"\d+\.\d+\.\d+\.\d+|localhost|:\d{2,5}\b", config_text)
    config = yaml.safe_load(config_text)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(PROMETHEUS_JOBS)
    metrics_md = (REPO / "docs" / "metrics.md").read_text()
    for name, job in jobs.items():
        assert job["file_sd_configs"] == [{"files": [f"targets/{name}.yml"]}]
        targets = yaml.safe_load((PROMETHEUS_DIR / "targets" / f"{name}.yml").read_text())
        address = targets[0]["targets"][0]
        assert f"| `{name}` |" in metrics_md and address in metrics_md, (name, address)
    assert config["alerting"]["alertmanagers"][0]["file_sd_configs"] == [{"files": ["targets/alertmanager.yml"]}]
    assert config["rule_files"] == ["rules/*.yml"]


def test_compressed_copy_divides_every_for_and_window(tmp_path, rule_files):
    result = run(sys.executable, GENERATE, "--compress", "20", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    check = run("promtool", "check", "rules", "--lint=all", "--lint-fatal", *sorted(tmp_path.glob("*.yml")))
    assert check.returncode == 0, check.stdout + check.stderr
    compressed = {c: yaml.safe_load((tmp_path / f"{c}.yml").read_text()) for c in COMPONENTS}
    pairs = [(a, b) for c in COMPONENTS
             for ga, gb in zip(rule_files[c]["groups"], compressed[c]["groups"])
             for a, b in zip(ga["rules"], gb["rules"])]
    seconds = {"m": 60, "h": 3600, "d": 86400, "s": 1}
    for prod, fast in pairs:
        if "for" in prod:
            value, unit = int(prod["for"][:-1]), prod["for"][-1]
            assert fast["for"] == f"{value * seconds[unit] // 20}s", (prod["for"], fast["for"])
    by_name = {r.get("record"): r for _, r in pairs}
    assert "[180s]" in by_name["job:django_http_server_errors:ratio_rate1h"]["expr"]
    assert "[12960s]" in by_name["job:django_http_server_errors:ratio_rate3d"]["expr"]
    assert "[15s]" in by_name["view:django_http_requests:rate5m"]["expr"]
    # everything except durations is identical, thresholds included
    strip = re.compile(r"\[[^\]]*\]")
    assert all(strip.sub("", a["expr"]) == strip.sub("", b["expr"]) for a, b in pairs)
    assert all(a.get("labels") == b.get("labels") for a, b in pairs)
    # the texts speak of the compressed durations ("for 3 minutes" becomes "for 9 seconds"), all else equal
    words = re.compile(r"\b\d+ (?:milli)?(?:second|minute|hour|day|week)s?\b")
    for prod, fast in pairs:
        if "annotations" not in prod:
            continue
        for key in ("summary", "description"):
            assert words.sub("D", prod["annotations"][key]) == words.sub("D", fast["annotations"][key]), prod["alert"]
        if "for" in prod and lib.human_duration(prod["for"]) in prod["annotations"]["description"]:
            assert lib.human_duration(fast["for"]) in fast["annotations"]["description"], prod["alert"]
            assert lib.human_duration(prod["for"]) not in fast["annotations"]["description"], prod["alert"]
    worker_down = next(b for a, b in pairs if a.get("alert") == "CeleryWorkerDown")
    assert "for 9 seconds" in worker_down["annotations"]["description"], worker_down["annotations"]
    timeouts = next(b for a, b in pairs if a.get("alert") == "GunicornWorkerTimeouts")
    assert "in the last 30 seconds" in timeouts["annotations"]["description"], timeouts["annotations"]


def test_check_reports_drift(tmp_path):
    result = run(sys.executable, GENERATE, "--out", tmp_path)
    assert result.returncode == 0
    assert run(sys.executable, GENERATE, "--check", "--out", tmp_path).returncode == 0
    edited = tmp_path / "redis.yml"
    edited.write_text(edited.read_text().replace("for: 1m", "for: 2m"))
    drift = run(sys.executable, GENERATE, "--check", "--out", tmp_path)
    assert drift.returncode == 1 and "redis.yml" in drift.stderr
