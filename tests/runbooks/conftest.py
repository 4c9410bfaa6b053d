"""Fixtures of the runbook tests: the runbooks, the alert rules they follow, the dashboards they link."""

import pytest

from tests.ops.procs import PROMETHEUS_DIR, REPO, load_module
from tests.support.dashboards import load_dashboards, panels
from tests.support.runbooks import load_runbooks

RULES_DIR = PROMETHEUS_DIR / "rules"
CATALOG = REPO / "tests" / "ops" / "alert_catalog.txt"


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
def catalog():
    """The alert names of the catalog (tests/ops/alert_catalog.txt, the copy of DESIGN.md's table)."""
    lines = [line.strip() for line in CATALOG.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="session")
def thresholds():
    """ops/prometheus/thresholds.py, the one place of every threshold and of the link base URLs."""
    return load_module(PROMETHEUS_DIR / "thresholds.py")


@pytest.fixture(scope="session")
def dashboard_panels():
    """{dashboard uid: {panel id: panel title}} of the committed dashboards, rows' panels included."""
    return {uid: {p["id"]: p["title"] for p in panels(d)} for uid, d in load_dashboards().items()}
