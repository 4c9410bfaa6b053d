"""The monitoring config: YAML deep-merged over documented defaults; a wrong key or type is named."""

import re

import pytest

from django_celery_ops.monitoring import config
from django_celery_ops.monitoring.config import ConfigError
from tests.monitoring.support import PROJECT_CONFIG

DEFAULTS_FILE = config.resources.files("django_celery_ops.monitoring").joinpath("defaults.yml")


def test_every_key_of_defaults_yml_is_documented_by_a_comment():
    lines = DEFAULTS_FILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if re.match(r"^\s*[A-Za-z_][\w-]*:", line):
            previous = lines[number - 1].strip() if number else ""
            assert "#" in line or previous.startswith("#"), f"defaults.yml line {number + 1} has no comment: {line}"


def test_load_without_a_file_is_the_defaults():
    assert config.load(None) == config.defaults()


def test_a_file_overrides_one_key_and_keeps_its_siblings(tmp_path):
    path = tmp_path / "m.yml"
    path.write_text("thresholds:\n  slow_request_ratio: 0.2\nfor:\n  DjangoLatencyBudgetBurn:\n    warning: 30m\n")
    cfg, defaults = config.load(path), config.defaults()
    assert cfg["thresholds"]["slow_request_ratio"] == 0.2
    assert cfg["thresholds"]["server_error_ratio"] == defaults["thresholds"]["server_error_ratio"]
    assert cfg["for"]["DjangoLatencyBudgetBurn"] == {"critical": "2m", "warning": "30m"}
    assert cfg["selectors"] == defaults["selectors"]


def test_lists_are_replaced_not_appended():
    assert config.merge({"group_by": ["cluster", "job"]})["group_by"] == ["cluster", "job"]


def test_a_number_may_replace_an_integer_default():
    assert config.merge({"thresholds": {"listen_backlog_connections": 0.5}})["thresholds"]["listen_backlog_connections"] == 0.5


def test_an_empty_file_is_the_defaults(tmp_path):
    (tmp_path / "empty.yml").write_text("")
    assert config.load(tmp_path / "empty.yml") == config.defaults()


@pytest.mark.parametrize("overrides,path", [
    ({"threshold": {}}, "threshold"),
    ({"thresholds": {"slow_request_ratios": 0.1}}, "thresholds.slow_request_ratios"),
    ({"for": {"DjangoLatencyBudgetBurn": {"page": "2m"}}}, "for.DjangoLatencyBudgetBurn.page"),
    ({"links": {"runbook_url_template": "x"}}, "links.runbook_url_template"),
])
def test_an_unknown_key_is_an_error_naming_its_path(overrides, path):
    with pytest.raises(ConfigError, match=rf"unknown key '{re.escape(path)}'"):
        config.merge(overrides)


@pytest.mark.parametrize("overrides,path", [
    ({"thresholds": {"slow_request_ratio": "0.1"}}, "thresholds.slow_request_ratio"),
    ({"thresholds": {"slow_request_ratio": True}}, "thresholds.slow_request_ratio"),
    ({"selectors": {"django": ["job=\"x\""]}}, "selectors.django"),
    ({"group_by": "job"}, "group_by"),
    ({"group_by": [1]}, "group_by"),
    ({"slo": 0.99}, "slo"),
    ({"for": {"RedisDown": 60}}, "for.RedisDown"),
    ({"for": {"DjangoAvailabilityBudgetBurn": "2m"}}, "for.DjangoAvailabilityBudgetBurn"),
])
def test_a_value_of_the_wrong_type_is_an_error_naming_its_path(overrides, path):
    with pytest.raises(ConfigError, match=rf"^{re.escape(path)}: expected"):
        config.merge(overrides)


def test_an_unknown_component_and_a_malformed_selector_are_named():
    with pytest.raises(ConfigError, match="components: unknown component 'haproxy'"):
        config.merge({"components": ["django", "haproxy"]})
    with pytest.raises(ConfigError, match="^selectors.celery: "):
        config.merge({"selectors": {"celery": "job=celery"}})
    with pytest.raises(ConfigError, match="^common_selector: "):
        config.merge({"common_selector": "{namespace=\"shop\"}"})


def test_invalid_yaml_and_a_non_mapping_are_errors(tmp_path):
    (tmp_path / "bad.yml").write_text("thresholds: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(tmp_path / "bad.yml")
    (tmp_path / "list.yml").write_text("- a\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        config.load(tmp_path / "list.yml")


def test_the_project_config_loads_and_names_the_prometheus_jobs():
    cfg = config.load(PROJECT_CONFIG)
    assert cfg["components"] == ["gunicorn", "django", "celery", "jobs", "redis", "nginx", "meta"]
    assert cfg["selectors"]["django"] == 'job=~"django-wsgi|django-asgi"'


def test_docs_monitoring_md_lists_every_config_key():
    doc = (PROJECT_CONFIG.parents[1] / "docs" / "monitoring.md").read_text()
    for key, value in config.defaults().items():
        if key == "for" or not isinstance(value, dict):
            assert f"`{key}" in doc, key
            continue
        for sub in value:
            assert f"`{key}.{sub}`" in doc, f"{key}.{sub}"
