"""The proxy's rules and panels (rules/nginx.py): built only with the nginx component, every series
scoped to its own scrape job, no page for a dead exporter, the queue threshold on a real bucket."""

import ast
from pathlib import Path

from django_celery_ops.monitoring import config, dashboards, rules, runbooks
from prometheus_client.utils import floatToGoString

from tests.monitoring.support import REPO, SHOP, all_rules, selector_matchers, vector_selectors
from tests.support.dashboards import aggregation_problems, panels, scope_problems

METRICS_PY = REPO / "package" / "src" / "django_celery_ops" / "metrics.py"
# Another application's proxy: its own job names, inside the shop's namespace and cluster scope.
SHOP_PROXY = {**SHOP, "selectors": {**SHOP["selectors"], "nginx": 'job="shop-edge"', "nginx_log": 'job="shop-edge-log"'},
              "components": ["gunicorn", "django", "celery", "jobs", "redis", "nginx", "meta"]}
PROXY_PANELS = set(range(14, 22))
PROXY_ALERTS = {"NginxUpstreamErrors", "NginxDown", "RequestQueueTimeHigh"}


def _selector_of(metric):
    """Return the selector key a series of the nginx rules must carry."""
    base = metric.split(":")[1] if metric.count(":") == 2 else metric
    if base.startswith("django_"):
        return "django"  # the queue-time histogram, written by the app
    return "nginx" if base.startswith(("nginx_up", "nginx_connections_")) else "nginx_log"


def _overview(cfg):
    built = {d["uid"]: d for d in dashboards.build_all(cfg).values()}
    return built, built[f"{cfg['dashboards']['uid_prefix']}service-overview"]


def test_the_proxy_rules_and_row_come_only_with_the_nginx_component():
    plain = config.merge({})
    assert "nginx" not in rules.build(plain)
    assert PROXY_PANELS.isdisjoint(p["id"] for p in panels(_overview(plain)[1]))
    cfg = config.merge(SHOP_PROXY)
    assert {r["alert"] for _c, r in all_rules({"nginx": rules.build(cfg)["nginx"]}) if "alert" in r} == PROXY_ALERTS
    assert PROXY_PANELS <= {p["id"] for p in panels(_overview(cfg)[1])}


def test_every_series_carries_its_own_scrape_jobs_selector_and_the_common_one():
    cfg = config.merge(SHOP_PROXY)
    common, checked = selector_matchers(cfg["common_selector"]), 0
    for _c, rule in all_rules({"nginx": rules.build(cfg)["nginx"]}):
        for metric, matchers in vector_selectors(rule["expr"]):
            assert common | selector_matchers(cfg["selectors"][_selector_of(metric)]) <= matchers, (metric, matchers)
            checked += 1
    assert checked >= 12


def test_proxy_panels_carry_another_apps_selectors_and_group_by():
    cfg = config.merge(SHOP_PROXY)
    built, overview = _overview(cfg)
    assert not scope_problems(built, cfg) and not aggregation_problems(built, cfg)
    for panel in panels(overview):
        if panel["id"] in PROXY_PANELS:
            for target in panel["targets"]:
                assert 'namespace="shop"' in target["expr"], (panel["id"], target["expr"])
                assert "shop-edge" in target["expr"] or "shop-web" in target["expr"], (panel["id"], target["expr"])


def test_a_dead_exporter_pages_nobody_and_both_proxy_targets_are_watched():
    cfg = config.merge(SHOP_PROXY)
    built = {rule.get("alert"): rule for _c, rule in all_rules(rules.build(cfg))}
    # Only nginx's own verdict pages: an exporter that cannot be scraped is PrometheusTargetDown's ticket.
    assert [metric for metric, _ in vector_selectors(built["NginxDown"]["expr"])] == ["nginx_up"]
    watched = [matchers for metric, matchers in vector_selectors(built["PrometheusTargetDown"]["expr"]) if metric == "up"]
    for key in ("nginx", "nginx_log"):
        assert any(selector_matchers(cfg["selectors"][key]) <= m for m in watched), key


def test_runbook_queries_scope_access_log_and_exporter_series_to_their_jobs():
    cfg = config.merge(SHOP_PROXY)
    query = runbooks.render_query(
        cfg, "sum by (upstream) (rate(nginx_http_responses_total[5m])) and on () max(nginx_up) > 0 or up", "nginx")
    assert 'nginx_http_responses_total{job="shop-edge-log", namespace="shop"}' in query
    assert 'nginx_up{job="shop-edge", namespace="shop"}' in query
    assert 'up{job="shop-edge", namespace="shop"}' in query


def test_the_queue_threshold_is_a_bucket_bound_of_the_apps_queue_histogram():
    tree = ast.parse(Path(METRICS_PY).read_text())
    buckets = next(ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                   and getattr(node.targets[0], "id", "") == "_QUEUE_BUCKETS")
    for cfg in (config.load(None), config.load(REPO / "ops" / "monitoring.yml")):
        bound = cfg["thresholds"]["request_queue_seconds"]
        assert bound in buckets, bound
        rule = next(r for _c, r in all_rules({"nginx": rules.nginx.rules(cfg)})
                    if r.get("record") == "job:django_http_request_queue_slow:ratio_rate5m")
        assert f'le="{floatToGoString(bound)}"' in rule["expr"]  # as client_python writes the bucket
