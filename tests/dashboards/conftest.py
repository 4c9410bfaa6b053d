"""Fixtures of the dashboard tests: this project's config, the committed dashboards, the panel contract."""

import pytest
import yaml
from django_celery_ops.monitoring import config, lib

from tests.support.dashboards import CONFIG, GRAFANA_DIR, RULES_DIR, load_dashboards



@pytest.fixture(scope="session")
def cfg():
    """This project's monitoring config (ops/monitoring.yml over the defaults)."""
    return config.load(CONFIG)


@pytest.fixture(scope="session")
def dashboards():
    """{uid: committed dashboard JSON}."""
    return load_dashboards(GRAFANA_DIR / "dashboards")


@pytest.fixture(scope="session")
def contract():
    """{dashboard name: {panel id: panel}} of the package's panels.yml."""
    return {d["uid"]: {p["id"]: p for p in d["panels"]} for d in lib.panels_contract()}


@pytest.fixture(scope="session")
def recording_rule_names():
    return {
        rule["record"]
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
