"""Every generated PromQL expression carries the configured matchers (checked by parsing it, promql-parser).

Under the defaults, this project's config and another application's (namespace, cluster, other
job names): every vector selector of every rule has the common matchers and its component's
selector, every aggregation and vector match keeps the group_by labels, and the runbooks'
queries are scoped the same way.
"""

import pytest

from django_celery_ops.monitoring import config, rules, runbooks
from tests.monitoring.support import all_rules, configs, grouping_labels, selector_matchers, vector_selectors
from tests.support.runbooks import code_blocks, substitute

CONFIGS = configs()
# Which selectors a rule file may use: its own; RedisDown also reads the Celery exporter's broker
# gauge; nginx reads its two scrape jobs and the app's queue-time histogram (RequestQueueTimeHigh);
# PrometheusTargetDown watches the targets of every component.
ALLOWED = {"gunicorn": ["gunicorn"], "django": ["django"], "celery": ["celery"], "jobs": ["jobs"],
           "redis": ["redis", "celery"], "nginx": ["nginx", "nginx_log", "django"],
           "meta": ["gunicorn", "django", "celery", "jobs", "redis", "nginx", "nginx_log", "prometheus",
                    "alertmanager"]}
# Series whose labels are the alert's, not a target's: no selector can apply.
UNSCOPED = {"ALERTS", "ALERTS_FOR_STATE"}
# Published by the web tiers, the workers and the sweeper (three jobs): no component selector.
EVERY_PRODUCER = {"celery_task_sent_total"}
# Series Prometheus writes per target: scoped by the runbook's component where it has a selector of
# its own (RedisDown: the redis job), by the common matchers only for PrometheusTargetDown (all targets).
TARGET_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
                 "scrape_series_added"}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_vector_selector_of_every_rule_has_the_common_and_its_component_matchers(name):
    cfg = CONFIGS[name]
    common = selector_matchers(cfg["common_selector"])
    checked = 0
    for component, rule in all_rules(rules.build(cfg)):
        allowed = [selector_matchers(cfg["selectors"][s]) for s in ALLOWED[component]]
        for metric, matchers in vector_selectors(rule["expr"]):
            label = rule.get("alert") or rule.get("record")
            assert common <= matchers, (label, metric, matchers)
            assert any(own <= matchers for own in allowed), (label, metric, matchers)
            checked += 1
    assert checked >= sum(1 for _c, r in all_rules(rules.build(cfg)) if r["expr"] != "vector(1)")


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_aggregation_and_vector_match_keeps_the_group_by_labels(name):
    cfg = CONFIGS[name]
    for _component, rule in all_rules(rules.build(cfg)):
        for kind, labels in grouping_labels(rule["expr"]):
            assert "By" in kind or "Include" in kind, (rule.get("alert") or rule.get("record"), kind)
            assert set(cfg["group_by"]) <= set(labels), (rule.get("alert") or rule.get("record"), kind, labels)


def test_aggregations_also_keep_the_labels_the_selectors_match_on():
    """A recorded series must still match the selector: with group_by [job] and a cluster matcher, keep cluster."""
    cfg = config.merge({"common_selector": 'cluster="eu-1"', "selectors": {"django": 'app="shop", job="web"'}})
    for component, rule in all_rules(rules.build(cfg)):
        if component != "django":
            continue
        for _kind, labels in grouping_labels(rule["expr"]):
            assert {"job", "app", "cluster"} <= set(labels), (rule.get("record") or rule.get("alert"), labels)


def test_the_shop_config_changes_every_selector():
    """The check above is not vacuous: no matcher of the defaults survives in another app's rules."""
    shop, defaults = CONFIGS["shop"], CONFIGS["defaults"]
    default_jobs = set().union(*(selector_matchers(s) for s in defaults["selectors"].values()))
    for _component, rule in all_rules(rules.build(shop)):
        for _metric, matchers in vector_selectors(rule["expr"]):
            assert not default_jobs & matchers, rule


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_runbook_queries_carry_the_configured_matchers(name):
    cfg = CONFIGS[name]
    common = selector_matchers(cfg["common_selector"])
    components = {r["alert"]: r["labels"]["component"]
                  for _c, r in all_rules(rules.build(cfg | {"components": list(config.COMPONENTS)})) if "alert" in r}
    own = [selector_matchers(s) for s in cfg["selectors"].values()]
    checked = 0
    for file_name, text in runbooks.render_all(cfg, components).items():
        for block in code_blocks(text, "promql"):
            for metric, matchers in vector_selectors(substitute(block.strip())):
                if metric in UNSCOPED:
                    continue
                assert common <= matchers, (file_name, metric, matchers)
                if metric in EVERY_PRODUCER:  # counted under every tier's job: the common scope alone
                    assert not any(o and o <= matchers for o in own), (file_name, metric, matchers)
                    continue
                if metric not in TARGET_SERIES or components.get(file_name[:-3]) in ALLOWED:
                    assert any(o <= matchers for o in own), (file_name, metric, matchers)
                checked += 1
    assert checked >= 100
