"""Every ```promql block of every runbook runs on a real Prometheus loaded with the real rules."""

import pytest
import requests

from tests.ops.procs import start_prometheus
from tests.support.runbooks import runbook_queries

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """A real Prometheus on a free loopback port, with the real rule files (recording rules included)."""
    with start_prometheus(tmp_path_factory.mktemp("prometheus"), evaluation_interval="1s") as service:
        yield service.url


def test_runbooks_have_queries_to_run():
    assert len(runbook_queries()) >= 2 * 28


@pytest.mark.parametrize("alert,query", runbook_queries(), ids=lambda v: str(v)[:50])
def test_runbook_query_runs_on_a_real_prometheus(prometheus, alert, query):
    assert "$" not in query, query
    response = requests.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=10)
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", (alert, query, body.get("error"))


def test_runbook_queries_accept_real_label_values():
    narrowed = runbook_queries({"VIEW": "jobs:detail", "QUEUE": "imports", "JOB": "django-wsgi"})
    assert narrowed and all("$" not in q for _, q in narrowed)
    assert any('view=~"jobs:detail"' in q for _, q in narrowed)
