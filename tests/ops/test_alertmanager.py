"""Alertmanager: valid config, routes to the right receiver, inhibitions that really silence."""

import re
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

from ops.drills.procs import (
    ALERTMANAGER_DIR,
    flushes_of,
    load_module,
    start_alertmanager,
    start_inbox,
    start_prometheus,
)
from tests.ops.helpers import ALERTMANAGER_CONFIG, project_config, run
from tests.ops.procs import REPO

ROUTE_CASES = yaml.safe_load((ALERTMANAGER_DIR / "tests" / "routes.yml").read_text())
INHIBITION_CASES = yaml.safe_load((ALERTMANAGER_DIR / "tests" / "inhibitions.yml").read_text())
RECEIVER_BY_SEVERITY = {"critical": "pager", "warning": "ticket"}
FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}  # seconds, not minutes
# A commented example line: "# key: value" or "# - key: value" (prose comments have no "key:").
EXAMPLE_LINE = re.compile(r"^(\s*)# (\s*(?:- )?[A-Za-z_]+:(?: .*)?)$")


def _routes_test(config, labels, receiver):
    pairs = [f"{k}={v}" for k, v in labels.items()]
    return run("amtool", "config", "routes", "test", f"--config.file={config}", f"--verify.receivers={receiver}",
               *pairs)


def test_committed_config_is_valid():
    result = run("amtool", "check-config", ALERTMANAGER_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_rendered_config_points_every_inbox_webhook_at_inbox_url(tmp_path, monkeypatch):
    monkeypatch.setenv("INBOX_URL", "http://127.0.0.1:19095/")
    render = load_module(ALERTMANAGER_DIR / "render.py")
    path = render.render(tmp_path, timings={"group_wait": "1s"})
    assert run("amtool", "check-config", path).returncode == 0
    config = yaml.safe_load(path.read_text())
    urls = {r["name"]: [h["url"] for h in r["webhook_configs"]] for r in config["receivers"]}
    assert urls == {name: [f"http://127.0.0.1:19095/{name}"] for name in ("pager", "ticket", "deadman")}
    routes = [config["route"], *config["route"]["routes"]]
    assert {r["group_wait"] for r in routes} == {"1s"}
    assert (tmp_path / "templates" / "notifications.tmpl").is_file()


def test_commented_receiver_examples_are_valid_config(tmp_path):
    lines = ALERTMANAGER_CONFIG.read_text().splitlines()
    enabled = [f"{m[1]}{m[2]}" if (m := EXAMPLE_LINE.match(line)) else line for line in lines]
    assert sum(a != b for a, b in zip(lines, enabled)) >= 15, "examples not found"
    (tmp_path / "alertmanager.yml").write_text("\n".join(enabled) + "\n")
    (tmp_path / "templates").symlink_to(ALERTMANAGER_DIR / "templates")
    result = run("amtool", "check-config", tmp_path / "alertmanager.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    receivers = {r["name"]: r for r in yaml.safe_load("\n".join(enabled))["receivers"]}
    assert receivers["pager"]["pagerduty_configs"][0]["routing_key_file"]
    assert receivers["ticket"]["slack_configs"][0]["api_url_file"]
    assert receivers["ticket"]["email_configs"][0]["to"]


def test_templates_render_and_show_every_annotation():
    text = (ALERTMANAGER_DIR / "templates" / "notifications.tmpl").read_text()
    for field in ("summary", "description", "runbook_url", "dashboard_url"):
        assert f".Annotations.{field}" in text
    result = run("amtool", "template", "render", f"--template.glob={ALERTMANAGER_DIR / 'templates' / '*.tmpl'}",
                 '--template.text={{ template "ops.title" . }}{{ template "ops.text" . }}')
    assert result.returncode == 0, result.stderr


def test_a_notification_carries_instance_value_runbook_panel_query_and_a_silence_link():
    """Rendered by amtool from a real webhook payload (ops/alertmanager/tests/notification.json)."""
    data = ALERTMANAGER_DIR / "tests" / "notification.json"
    result = run("amtool", "template", "render", f"--template.glob={ALERTMANAGER_DIR / 'templates' / '*.tmpl'}",
                 f"--template.data={data}", '--template.text={{ template "ops.title" . }}\n{{ template "ops.text" . }}')
    assert result.returncode == 0, result.stderr
    title, *body = result.stdout.splitlines()
    assert title == "[FIRING:1] CeleryQueueBacklog (celery, celery-exporter, 127.0.0.1:9808)"
    text = "\n".join(body)
    assert "warning | CeleryQueueBacklog | celery-exporter on 127.0.0.1:9808 queue imports" in text
    assert "holds 1.234k messages" in text  # the live value, rendered by Prometheus into the description
    assert "Runbook: https://wiki.acme.example/display/OPS/CeleryQueueBacklog" in text
    assert "Dashboard: http://localhost:3000/d/celery-queues?viewPanel=1" in text
    assert "Query: http://127.0.0.1:9090/graph?g0.expr=" in text
    [silence] = [line.split(": ", 1)[1] for line in body if line.startswith("Silence: ")]
    url = urlsplit(silence)
    assert f"{url.scheme}://{url.netloc}" == "http://127.0.0.1:9093" and url.fragment.startswith("/silences/new?")
    matchers = parse_qs(url.fragment.split("?", 1)[1])["filter"][0]
    assert matchers == ('{alertname="CeleryQueueBacklog",component="celery",instance="127.0.0.1:9808",'
                        'job="celery-exporter",queue_name="imports",severity="warning"}')


@pytest.mark.parametrize("case", ROUTE_CASES, ids=lambda c: f"{c['labels']['alertname']}-{c['receiver']}")
def test_route_lands_on_receiver(case):
    result = _routes_test(ALERTMANAGER_CONFIG, case["labels"], case["receiver"])
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_generated_alert_routes_by_severity(alert_rules):
    for rule in alert_rules:
        labels = {"alertname": rule["alert"], **rule["labels"]}
        expected = "deadman" if rule["alert"] == "Watchdog" else RECEIVER_BY_SEVERITY[labels["severity"]]
        result = _routes_test(ALERTMANAGER_CONFIG, labels, expected)
        assert result.returncode == 0, (labels, result.stdout + result.stderr)


def test_every_inhibit_rule_has_a_live_case(alertmanager_config):
    assert sorted(c["rule"] for c in INHIBITION_CASES) == list(range(len(alertmanager_config["inhibit_rules"])))


# --- live Alertmanager + inbox ---------------------------------------------------------------

@pytest.fixture(scope="module")
def inbox(tmp_path_factory):
    with start_inbox(tmp_path_factory.mktemp("inbox")) as service:
        yield service


@pytest.fixture
def alertmanager(tmp_path, inbox):
    with start_alertmanager(tmp_path / "alertmanager", inbox.url, timings=FAST, log_level="debug") as service:
        yield service


def _post(am, alerts):
    response = requests.post(f"{am.url}/api/v2/alerts", json=alerts, timeout=5)
    assert response.status_code == 200, response.text


def _alert(labels, **annotations):
    return {"labels": {k: str(v) for k, v in labels.items()}, "annotations": annotations}


def _delivered(inbox, case):
    """Return [(receiver, alert)] recorded by the inbox for alerts labelled case=<case>."""
    notifications = requests.get(f"{inbox.url}/api/notifications", timeout=5).json()
    return [(n["receiver"], a) for n in notifications for a in n["alerts"] if a["labels"].get("case") == case]


def _wait(predicate, timeout=20, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _matches(alert, labels):
    return all(alert["labels"].get(k) == str(v) for k, v in labels.items())


@pytest.mark.integration
def test_each_severity_reaches_its_receiver_with_links(alertmanager, inbox, alert_rules):
    case = uuid.uuid4().hex
    sent = []
    for name, severity, receiver in (("RedisDown", "critical", "pager"),
                                     ("DjangoMigrationsUnapplied", "warning", "ticket"),  # not celery: RedisDown would inhibit it
                                     ("Watchdog", "none", "deadman")):
        rule = next(r for r in alert_rules if r["alert"] == name)
        annotations = {k: rule["annotations"][k] for k in ("runbook_url", "dashboard_url")}
        labels = {"alertname": name, **rule["labels"], "case": case}
        assert labels["severity"] == severity
        sent.append((receiver, labels, annotations))
        _post(alertmanager, [_alert(labels, summary=f"{name} test", description=f"{name} is a test",
                                    **annotations)])
    got = _wait(lambda: len(_delivered(inbox, case)) >= 3 and _delivered(inbox, case), what="3 notifications")
    for receiver, labels, annotations in sent:
        matching = [(r, a) for r, a in got if _matches(a, labels)]
        assert matching, f"{labels['alertname']} never reached the inbox"
        assert {r for r, _ in matching} == {receiver}
        alert = matching[0][1]
        assert alert["status"] == "firing"
        assert alert["annotations"]["runbook_url"] == annotations["runbook_url"]
        assert alert["annotations"]["runbook_url"] == \
            project_config()["links"]["runbook_url"].replace("{alert}", labels["alertname"])
        assert alert["annotations"]["dashboard_url"] == annotations["dashboard_url"]
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


@pytest.mark.integration
@pytest.mark.parametrize("case", INHIBITION_CASES, ids=lambda c: f"rule{c['rule']}-{c['source']['alertname']}")
def test_inhibit_rule_silences_its_targets(alertmanager, inbox, case):
    tag = uuid.uuid4().hex

    def tagged(labels):
        return {**labels, "case": tag}

    groups = {"source": [case["source"]], "inhibited": case["inhibited"], "delivered": case["delivered"]}
    _post(alertmanager, [_alert(tagged(labels), summary="test", description="test", runbook_url="x",
                                dashboard_url="y") for labels_list in groups.values() for labels in labels_list])

    def api_alerts():
        found = requests.get(f"{alertmanager.url}/api/v2/alerts", params={"filter": f'case="{tag}"'}, timeout=5)
        return found.json() if len(found.json()) == sum(map(len, groups.values())) else None

    listed = _wait(api_alerts, what="alerts listed by the API")
    for kind, labels_list in groups.items():
        for labels in labels_list:
            status = next(a["status"] for a in listed if _matches(a, labels))
            if kind == "inhibited":
                assert status["inhibitedBy"] and status["state"] == "suppressed", (labels, status)
            else:
                assert not status["inhibitedBy"] and status["state"] == "active", (labels, status)

    # The source and the spared alerts arrive. Then the negative side waits on a condition, not a
    # sleep: each target's group was flushed twice (the dispatcher's debug log), so its first flush
    # went through the whole pipeline, where the inhibition dropped it, and nothing reached the inbox.
    must_arrive = groups["source"] + groups["delivered"]
    _wait(lambda: all(any(_matches(a, labels) for _, a in _delivered(inbox, tag)) for labels in must_arrive),
          what="source and spared alerts in the inbox")
    for labels in groups["inhibited"]:
        fingerprint = next(a["fingerprint"] for a in listed if _matches(a, labels))
        _wait(lambda: flushes_of(alertmanager, labels["alertname"], fingerprint) >= 2,
              what=f"two flushes of the group of {labels['alertname']}")
    delivered = [a for _, a in _delivered(inbox, tag)]
    for labels in groups["inhibited"]:
        assert not any(_matches(a, labels) for a in delivered), f"inhibited alert was delivered: {labels}"


@pytest.mark.integration
def test_watchdog_flows_from_prometheus_through_alertmanager_to_the_deadman_inbox(tmp_path, alertmanager, inbox):
    with start_prometheus(tmp_path / "prometheus", alertmanager=alertmanager,
                          scrape_interval="1s", evaluation_interval="1s", resend_delay="1s") as prometheus:
        groups = requests.get(f"{prometheus.url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        assert {g["name"] for g in groups} >= {"gunicorn.rules", "django.rules", "celery.rules", "meta.alerts"}
        assert all(r["health"] != "err" for g in groups for r in g["rules"])

        def watchdog_delivered():
            return [n for n in requests.get(f"{inbox.url}/api/notifications", timeout=5,
                                            params={"receiver": "deadman", "alertname": "Watchdog"}).json()
                    if any("case" not in a["labels"] for a in n["alerts"])]  # not posted by another test

        notification = _wait(watchdog_delivered, timeout=30, what="Watchdog at the deadman receiver")[0]
        alert = notification["alerts"][0]
        assert alert["annotations"]["runbook_url"].endswith("/runbooks/Watchdog.md")
        assert alert["annotations"]["dashboard_url"].endswith("/d/service-overview?viewPanel=3")

        def self_scraped():
            up = requests.get(f"{prometheus.url}/api/v1/query", params={"query": 'up{job="prometheus"}'}, timeout=5)
            return [r["value"][1] for r in up.json()["data"]["result"]] == ["1"]

        _wait(self_scraped, what="Prometheus scraping itself from its file_sd target")


# --- the front page's amtool commands, run as printed (runbooks/README.md) ------------------------

def _front_page_commands(to):
    """Return (make up form, compose form) of the row of the front page's amtool table named `to`."""
    front = (REPO / "runbooks" / "README.md").read_text()
    body = front.split("## Silences and inhibited alerts", 1)[1].split("\n## ", 1)[0]
    for line in body.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == to:
            return [c.strip("`") for c in cells[1:]]
    raise AssertionError(f"no row {to!r} on the front page")


def _run_printed(command, am_url):
    """Run a printed command against this Alertmanager: $AM of the make-up form, the compose form's
    `docker compose exec alertmanager` prefix and loopback URL swapped for the test's."""
    command = command.replace("docker compose exec alertmanager ", "")
    command = command.replace("--alertmanager.url=http://127.0.0.1:9093", f"--alertmanager.url={am_url}")
    return run("bash", "-c", command, env={"AM": f"--alertmanager.url={am_url}", "PATH": "/usr/bin:/bin"})


@pytest.mark.integration
def test_the_front_pages_silence_and_inhibited_commands_work_on_both_stacks(alertmanager, inbox):
    tag = uuid.uuid4().hex
    source = {"alertname": "RedisDown", "severity": "critical", "component": "redis", "job": "celery-exporter",
              "instance": "127.0.0.1:9808", "case": tag}
    target = {"alertname": "CeleryWorkerDown", "severity": "warning", "component": "celery", "job": "celery-exporter",
              "hostname": "w1", "case": tag}
    _post(alertmanager, [_alert(source, summary="s", description="d"), _alert(target, summary="s", description="d")])
    inhibited_local, inhibited_compose = _front_page_commands("what fires but is held back by an inhibition")
    for command in (inhibited_local, inhibited_compose):
        listed = _wait(lambda c=command: "CeleryWorkerDown" in (out := _run_printed(c, alertmanager.url)).stdout
                       and out, what="the inhibited CeleryWorkerDown to be listed")
        assert "RedisDown" not in listed.stdout  # it fires and is delivered: not inhibited
    add_local, add_compose = _front_page_commands("silence one alert on one target")
    for command in (add_local, add_compose):
        added = _run_printed(command, alertmanager.url)
        assert added.returncode == 0 and re.fullmatch(r"[0-9a-f-]{36}\s*", added.stdout), added.stdout + added.stderr
        query_local, query_compose = _front_page_commands("list silences")
        listed = _run_printed(query_local if command == add_local else query_compose, alertmanager.url)
        assert added.stdout.strip() in listed.stdout and "restarting redis" in listed.stdout
        expire = _front_page_commands("end a silence")[0 if command == add_local else 1]
        ended = _run_printed(expire.replace("<silence id>", added.stdout.strip()), alertmanager.url)
        assert ended.returncode == 0, ended.stderr
    silenced = _run_printed(_front_page_commands("what fires but is silenced")[0], alertmanager.url)
    assert silenced.returncode == 0, silenced.stderr
