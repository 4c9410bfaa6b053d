"""Fixtures of the monitoring tests: the generated rules, the alert catalog, the panel contract."""

import pytest
import yaml

from tests.ops.helpers import ALERTMANAGER_CONFIG, COMPONENTS, HERE, PANELS_FILE, RULES_DIR


@pytest.fixture(scope="session")
def catalog():
    names = [line.strip() for line in (HERE / "alert_catalog.txt").read_text().splitlines()]
    return [n for n in names if n and not n.startswith("#")]


@pytest.fixture(scope="session")
def rule_files():
    """{component: parsed rule file}."""
    return {c: yaml.safe_load((RULES_DIR / f"{c}.yml").read_text()) for c in COMPONENTS}


@pytest.fixture(scope="session")
def alert_rules(rule_files):
    return [r for f in rule_files.values() for g in f["groups"] for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="session")
def recording_rules(rule_files):
    return [r for f in rule_files.values() for g in f["groups"] for r in g["rules"] if "record" in r]


@pytest.fixture(scope="session")
def panels():
    """{(uid, panel id): panel}."""
    dashboards = yaml.safe_load(PANELS_FILE.read_text())["dashboards"]
    return {(d["uid"], p["id"]): p for d in dashboards for p in d["panels"]}


@pytest.fixture(scope="session")
def alertmanager_config():
    return yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
