"""Fixtures of the runbook tests: the runbooks, the alert rules they follow, the dashboards they link."""

import pytest

from django_celery_ops.monitoring import config, rules
from tests.ops.procs import REPO
from tests.support.dashboards import load_dashboards, panels
from tests.support.runbooks import load_runbooks


@pytest.fixture(scope="session")
def runbooks():
    """{alert name: Markdown text} of runbooks/*.md (the index excluded)."""
    return load_runbooks()


@pytest.fixture(scope="session")
def rules_by_alert(alert_rules):
    """{alert name: [its rules]}."""
    grouped = {}
    for rule in alert_rules:
        grouped.setdefault(rule["alert"], []).append(rule)
    return grouped


@pytest.fixture(scope="session")
def catalog(monitoring_config):
    """The alert names the generator makes for this project's config (tests/ops checks them against the contract)."""
    names = [r["alert"] for groups in rules.build(monitoring_config).values() for g in groups for r in g["rules"]
             if "alert" in r]
    return list(dict.fromkeys(names))


@pytest.fixture(scope="session")
def monitoring_config():
    """This project's monitoring config (ops/monitoring.yml over the generator's defaults): every value's source."""
    return config.load(REPO / "ops" / "monitoring.yml")


@pytest.fixture(scope="session")
def thresholds(monitoring_config):
    """{name: value} of the numbers a runbook may quote: thresholds by name, SLO values as `slo.<name>`."""
    values = dict(monitoring_config["thresholds"])
    values.update({f"slo.{name}": value for name, value in monitoring_config["slo"].items()})
    return values


@pytest.fixture(scope="session")
def dashboard_panels():
    """{dashboard uid: {panel id: panel title}} of the committed dashboards, rows' panels included."""
    return {uid: {p["id"]: p["title"] for p in panels(d)} for uid, d in load_dashboards().items()}
