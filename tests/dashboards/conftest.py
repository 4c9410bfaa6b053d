"""Fixtures of the dashboard tests: the generator, the committed dashboards, the panel contract, the rules."""

import sys

import pytest
import yaml

from tests.ops.procs import REPO, load_module
from tests.support.dashboards import load_dashboards

GRAFANA_DIR = REPO / "ops" / "grafana"
GENERATE = GRAFANA_DIR / "generate.py"
PANELS_FILE = GRAFANA_DIR / "panels.yml"
RULES_DIR = REPO / "ops" / "prometheus" / "rules"
UIDS = {"service-overview", "django-requests", "gunicorn-saturation", "celery-queues"}


@pytest.fixture(scope="session")
def generator():
    """The dashboard generator, imported as a module."""
    return load_module(GENERATE)


@pytest.fixture(scope="session")
def thresholds(generator):
    """The thresholds module the generator reads (ops/prometheus/thresholds.py)."""
    return sys.modules["thresholds"]


@pytest.fixture(scope="session")
def dashboards():
    """{uid: committed dashboard JSON}."""
    return load_dashboards(GRAFANA_DIR / "dashboards")


@pytest.fixture(scope="session")
def contract():
    """{uid: {panel id: panel}} of ops/grafana/panels.yml."""
    data = yaml.safe_load(PANELS_FILE.read_text())["dashboards"]
    return {d["uid"]: {p["id"]: p for p in d["panels"]} for d in data}


@pytest.fixture(scope="session")
def recording_rule_names():
    return {
        rule["record"]
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
