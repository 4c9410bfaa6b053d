"""Game day in a box: every drill of docs/drills.md on a real, time-compressed stack, then a healthy run.

One stack for the module (scripts/up.sh under supervisord: Redis, both web tiers, Celery, the
exporter, Flower, Prometheus with the real rules compressed 20x, Alertmanager with the real
routing, the inbox). Each drill injects its fault and must fire its alerts, reach the inbox and
resolve; nothing unexpected may fire. A healthy-load run of the same length comes first and
may fire nothing but Watchdog. The report lands in var/reports/drills-test/.
"""
import time

import pytest

from ops.drills.harness import Stack, wait_until
from ops.drills.procs import ROOT, http
from ops.drills.runner import CAUSES, run_drill, run_healthy, write_report
from ops.drills.scenarios import DRILLS
from tests.support.dashboards import panel_queries, to_promql
from tests.support.runbooks import runbook_queries

pytestmark = pytest.mark.e2e
HEALTHY_SECONDS = 90.0


@pytest.fixture(scope="module")
def drill_stack(tmp_path_factory):
    stack = Stack.start(tmp_path_factory.mktemp("drills") / "var")
    # Task outcomes no drill produces on its own, for the dashboards' data check at the end: a
    # poison message and a revoked task (neither is an alert condition). Sent on the fresh stack.
    try:
        for kind in ("reject", "revoke"):
            status, body = http(f"{stack.url('WEB_PORT')}/drills/tasks/?kind={kind}&count=2", b"")
            assert status == 202, body
    except BaseException:
        stack.stop()  # a failed set-up must not leave the stack running
        raise
    results = []
    yield stack, results
    stack.stop()
    write_report(results, ROOT / "var" / "reports" / "drills-test",
                 note="Run by tests/e2e/test_drills.py on a time-compressed stack (docs/drills.md).")


def test_healthy_load_fires_nothing_but_watchdog(drill_stack):
    """First, on the fresh stack: the SLO burn of the drills (windows up to 3 days, compressed to
    hours) would otherwise still be fading."""
    stack, results = drill_stack
    result = run_healthy(stack, HEALTHY_SECONDS)
    results.append(result)
    assert result.ok, result.error
    assert "Watchdog" in stack.alerts("firing")


@pytest.mark.parametrize("name", list(DRILLS))
def test_drill_fires_its_alerts_notifies_and_resolves(drill_stack, name):
    stack, results = drill_stack
    result = run_drill(stack, DRILLS[name])
    results.append(result)
    assert result.ok, f"{name}: {result.error}; seen {sorted(result.seen)}"


def test_runbook_diagnosis_points_at_the_injected_cause(drill_stack):
    """While each diagnosed drill's alert fired, its runbook's Diagnosis queries (placeholders from the
    alert's labels) all returned data, and one named the injected cause (runner.CAUSES)."""
    _, results = drill_stack
    ran = {r.name: r for r in results if r.name in CAUSES}
    assert ran, "no diagnosed drill ran"
    problems = []
    for name, result in ran.items():
        for alert in CAUSES[name]:
            if alert not in result.fired:
                continue  # the drill's own test reports an alert that never fired
            diagnosis = result.diagnosis.get(alert)
            if diagnosis is None:
                problems.append(f"{name}: {alert} fired but was not diagnosed")
            else:
                problems += [f"{name}: {alert}: {p}" for p in diagnosis["problems"]]
    assert not problems, "\n".join(problems)


def test_every_dashboard_panel_shows_data_after_the_drills(drill_stack):
    """Run last: by now every fault has happened once, so failure-only panels have data too."""
    stack, _ = drill_stack
    wait_until(lambda: stack.query("celery_task_rejected_total") and stack.query("celery_task_revoked_total"),
               120, "the rejected and revoked tasks sent at start to be counted")
    empty = []
    end = time.time()
    for uid, panel_id, title, expr in panel_queries():
        result = stack.prom("/api/v1/query_range", query=to_promql(expr, offsets=False), start=end - 3600, end=end, step=15)["result"]
        if not result:
            empty.append(f"{uid}#{panel_id} {title}: {expr}")
    assert not empty, "panels without data:\n" + "\n".join(empty)


def test_every_runbook_query_runs_on_the_live_stack(drill_stack):
    """The PromQL an on-call engineer pastes from a runbook runs against the stack's real metrics."""
    stack, _ = drill_stack
    for alert, query in runbook_queries():
        stack.query(query)  # raises on a query Prometheus rejects
