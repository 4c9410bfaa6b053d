"""Every panel query and every variable query of the dashboards is valid for a real Prometheus."""

import re

import pytest
import requests
import yaml

from tests.support.dashboards import RULES_DIR
from tests.ops.procs import start_prometheus
from tests.support.dashboards import load_dashboards, panel_queries, to_promql

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus on a free loopback port, with the real rule files (recording rules included)."""
    with start_prometheus(tmp_path_factory.mktemp("prometheus"), evaluation_interval="1s") as service:
        yield service.url


def _api(prometheus, path, **params):
    response = requests.get(f"{prometheus}/api/v1/{path}", params=params, timeout=10)
    body = response.json()
    return response.status_code, body


def test_prometheus_loaded_every_rule_group(prometheus):
    expected = {g["name"] for path in RULES_DIR.glob("*.yml") for g in yaml.safe_load(path.read_text())["groups"]}
    status, body = _api(prometheus, "rules")
    assert status == 200 and body["status"] == "success", body
    assert {g["name"] for g in body["data"]["groups"]} == expected


@pytest.mark.parametrize("uid,panel_id,title,expr", panel_queries(), ids=lambda v: str(v)[:40])
def test_panel_query_is_valid_promql(prometheus, uid, panel_id, title, expr):
    query = to_promql(expr)  # offsets kept: `offset 1w` must be valid too
    assert "$" not in query, query
    status, body = _api(prometheus, "query", query=query)
    assert status == 200 and body["status"] == "success", (uid, panel_id, title, query, body.get("error"))


def test_variable_queries_are_valid_selectors(prometheus):
    for uid, dashboard in load_dashboards().items():
        for variable in dashboard["templating"]["list"]:
            if variable["type"] != "query":
                continue
            selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"]).groups()
            status, body = _api(prometheus, f"label/{label}/values", **{"match[]": to_promql(selector)})
            assert status == 200 and body["status"] == "success", (uid, variable["name"], body.get("error"))
