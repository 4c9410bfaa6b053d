"""The dashboards built for any config: scoped by its selectors and group-by labels, its uid prefix,
datasource and tags; only the dashboards and rows its components call for."""

import json

import pytest
from django_celery_ops.monitoring import config, dashboards

from tests.monitoring.support import SHOP, configs
from tests.support.dashboards import SCOPE_VARIABLES, aggregation_problems, panels, scope_problems

CONFIGS = configs()
NAMES = ("service-overview", "django-requests", "gunicorn-saturation", "celery-queues")


def _built(cfg):
    return {data["uid"]: data for data in dashboards.build_all(cfg).values()}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_query_carries_the_configs_selectors_and_the_variables(name):
    assert not scope_problems(_built(CONFIGS[name]), CONFIGS[name])


@pytest.mark.parametrize("name", list(CONFIGS))
def test_every_aggregation_keeps_the_configs_group_by_labels(name):
    assert not aggregation_problems(_built(CONFIGS[name]), CONFIGS[name])


def test_the_shop_config_names_its_namespace_in_every_query_but_alerts():
    built = _built(CONFIGS["shop"])
    for uid, dashboard in built.items():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                if "ALERTS" not in target["expr"]:
                    assert 'namespace="shop"' in target["expr"], (uid, panel["id"], target["expr"])


def test_uids_file_names_datasource_and_tags_follow_the_config():
    cfg = config.merge({**SHOP, "dashboards": {"uid_prefix": "shop-", "datasource": "mimir", "tags": ["shop", "ops"]}})
    files = dashboards.build_all(cfg)
    assert set(files) == {f"shop-{name}.json" for name in NAMES}
    for data in files.values():
        assert data["uid"].startswith("shop-")
        assert data["tags"] == ["shop", "ops"]
        datasource = next(v for v in data["templating"]["list"] if v["name"] == "datasource")
        assert datasource["current"]["value"] == "mimir"
    assert dashboards.alert_panels(cfg)["CeleryWorkerDown"] == ("shop-celery-queues", 4)
    provisioned = dashboards.provisioning(cfg)["datasources/datasources.yml"]
    assert "uid: mimir" in provisioned


def test_scope_variables_show_when_group_by_keeps_their_label():
    for cfg, shown in ((CONFIGS["shop"], {"cluster", "namespace", "job"}), (CONFIGS["defaults"], {"job"})):
        for uid, dashboard in _built(cfg).items():
            variables = {v["name"]: v for v in dashboard["templating"]["list"]}
            for name in SCOPE_VARIABLES:
                assert (variables[name].get("hide", 0) != 2) == (name in shown), (uid, name)


def test_a_group_by_label_beyond_cluster_and_namespace_gets_a_variable_too():
    cfg = config.merge({"group_by": ["region", "job"]})
    for uid, dashboard in _built(cfg).items():
        names = [v["name"] for v in dashboard["templating"]["list"]]
        assert names[:5] == ["datasource", "cluster", "namespace", "region", "job"], uid
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                assert 'region=~"$region"' in target["expr"], (uid, panel["id"])


def test_only_the_configured_components_get_dashboards_and_rows():
    defaults = _built(CONFIGS["defaults"])  # no jobs component: no jobs row on the overview
    assert set(defaults) == set(NAMES)
    assert {p["id"] for p in panels(defaults["service-overview"])}.isdisjoint({12, 13})
    assert {12, 13} <= {p["id"] for p in panels(_built(CONFIGS["project"])["service-overview"])}
    web_only = _built(config.merge({"components": ["gunicorn", "django", "meta"]}))
    assert set(web_only) == {"service-overview", "django-requests", "gunicorn-saturation"}


def test_thresholds_and_for_durations_come_from_the_config():
    cfg = config.merge({"thresholds": {"task_failure_ratio": 0.33}, "for": {"CeleryTaskFailureRateHigh": "2h"}})
    panel = next(p for p in panels(_built(cfg)["celery-queues"]) if p["id"] == 6)
    assert [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]] == [None, 0.33]
    assert "above 33% for 2 hours" in panel["description"]


def test_render_is_stable_json_text():
    data = dashboards.build_all(CONFIGS["project"])["celery-queues.json"]
    text = dashboards.render(data)
    assert text.endswith("}\n") and json.loads(text) == data
    assert dashboards.render(dashboards.build_all(CONFIGS["project"])["celery-queues.json"]) == text
