"""Fixtures of the monitoring tests: the generated rules, the alert catalog, the panel contract."""

import pytest
import yaml

from django_celery_ops.monitoring import lib, rules
from tests.ops.helpers import ALERTMANAGER_CONFIG, RULES_DIR, components, project_config


@pytest.fixture(scope="session")
def catalog():
    """The alert names the generator makes for this project's config, in order (the catalog)."""
    names = [r["alert"] for groups in rules.build(project_config()).values() for g in groups for r in g["rules"]
             if "alert" in r]
    return list(dict.fromkeys(names))


@pytest.fixture(scope="session")
def rule_files():
    """{component: parsed committed rule file}."""
    return {c: yaml.safe_load((RULES_DIR / f"{c}.yml").read_text()) for c in components()}


@pytest.fixture(scope="session")
def alert_rules(rule_files):
    return [r for f in rule_files.values() for g in f["groups"] for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="session")
def recording_rules(rule_files):
    return [r for f in rule_files.values() for g in f["groups"] for r in g["rules"] if "record" in r]


@pytest.fixture(scope="session")
def panels():
    """{(uid, panel id): panel} of the panel contract (the generator's panels.yml)."""
    return {(d["uid"], p["id"]): p for d in lib.panels_contract() for p in d["panels"]}


@pytest.fixture(scope="session")
def alertmanager_config():
    return yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
