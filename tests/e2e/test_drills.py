"""Game day in a box: every drill of docs/drills.md on real, time-compressed stacks, after a healthy run.

Two stacks for the module, started at once (scripts/up.sh under supervisord, each: Redis, both
web tiers, Celery, the exporter, Flower, Prometheus with the real rules compressed 20x,
Alertmanager with the real routing, the inbox), each running its lane of the catalog
(ops/drills/lanes.py, scenarios.LANES) in a background thread: first a healthy-load run on the
fresh stack, which may fire nothing but Watchdog, then its drills one after the other. Each drill
injects its fault and must fire its alerts, reach the inbox and resolve; nothing unexpected may
fire. The stacks share no process, port or state, so one lane's fault cannot reach the other's
alerts. A test waits for its drill's result. The report lands in var/reports/drills-test/.
"""
import time

import pytest

from ops.drills.harness import wait_until
from ops.drills.lanes import LaneRun, check_plan, start_stacks, stop_stacks
from ops.drills.procs import ROOT, http
from ops.drills.runner import CAUSES, write_report
from ops.drills.scenarios import DRILLS, LANES
from tests.support.dashboards import panel_queries, to_promql
from tests.support.runbooks import runbook_queries

pytestmark = pytest.mark.e2e
HEALTHY_SECONDS = 90.0
LANE_TIMEOUT = 3600.0  # a generous bound on one lane (about 10 minutes when all is well)


@pytest.fixture(scope="module")
def drill_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("drills")
    stacks = start_stacks([base / f"var-{n + 1}" for n in range(len(LANES))])
    # Task outcomes no drill produces on its own, for the dashboards' data check at the end: a
    # poison message and a revoked task (neither is an alert condition). Sent on each fresh stack.
    try:
        for stack in stacks:
            for kind in ("reject", "revoke"):
                status, body = http(f"{stack.url('WEB_PORT')}/drills/tasks/?kind={kind}&count=2", b"")
                assert status == 202, body
        run = LaneRun(stacks, LANES, HEALTHY_SECONDS)
    except BaseException:
        stop_stacks(stacks)  # a failed set-up must not leave the stacks running
        raise
    yield run
    run.stop()  # when a test failed early: no drill starts any more
    stop_stacks(stacks)
    if run.running:  # a drill was still running against the stopped stack: let it end, then sweep again
        run.stop(join_timeout=60)
        stop_stacks(stacks)
    write_report(run.results(), ROOT / "var" / "reports" / "drills-test",
                 note=f"Run by tests/e2e/test_drills.py on {len(stacks)} time-compressed stacks at once, "
                      "one lane of drills each (docs/drills.md).")


def test_the_lanes_hold_every_drill_once():
    check_plan(LANES)


def test_healthy_load_fires_nothing_but_watchdog(drill_run):
    """First on each fresh stack: the SLO burn of the drills (windows up to 3 days, compressed to
    hours) would otherwise still be fading."""
    for n, future in enumerate(drill_run.healthy):
        result = future.result(LANE_TIMEOUT)
        assert result.ok, f"stack {n + 1}: {result.error}"
    for n, stack in enumerate(drill_run.stacks):
        # Watchdog fires from the first evaluation on, whatever a drill does
        assert "Watchdog" in stack.alerts("firing"), f"stack {n + 1}"


@pytest.mark.parametrize("name", list(DRILLS))
def test_drill_fires_its_alerts_notifies_and_resolves(drill_run, name):
    result = drill_run.result(name, LANE_TIMEOUT)
    assert result.ok, f"{name} ({result.stack}): {result.error}; seen {sorted(result.seen)}"


def _all_drills(drill_run):
    """Wait until every lane is done (the tests below look at all faults)."""
    for future in drill_run.drills.values():
        future.exception(LANE_TIMEOUT)  # waits; a failed drill is its own test's failure


def test_runbook_diagnosis_points_at_the_injected_cause(drill_run):
    """While each diagnosed drill's alert fired, its runbook's Diagnosis queries (placeholders from the
    alert's labels) all returned data, and one named the injected cause (runner.CAUSES)."""
    _all_drills(drill_run)
    ran = {r.name: r for r in drill_run.results() if r.name in CAUSES}
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


def test_every_dashboard_panel_shows_data_after_the_drills(drill_run):
    """Run last: by now every fault has happened once, on one stack or the other, so failure-only
    panels have data too (on the stack whose lane caused it)."""
    _all_drills(drill_run)
    for stack in drill_run.stacks:
        wait_until(lambda: stack.query("celery_task_rejected_total") and stack.query("celery_task_revoked_total"),
                   120, "the rejected and revoked tasks sent at start to be counted")
    empty = []
    end = time.time()
    for uid, panel_id, title, expr in panel_queries():
        query = to_promql(expr, offsets=False)
        if not any(stack.prom("/api/v1/query_range", query=query, start=end - 3600, end=end, step=15)["result"]
                   for stack in drill_run.stacks):
            empty.append(f"{uid}#{panel_id} {title}: {expr}")
    assert not empty, "panels without data on any stack:\n" + "\n".join(empty)


def test_every_runbook_query_runs_on_the_live_stack(drill_run):
    """The PromQL an on-call engineer pastes from a runbook runs against the stacks' real metrics."""
    _all_drills(drill_run)
    for stack in drill_run.stacks:
        for alert, query in runbook_queries():
            stack.query(query)  # raises on a query Prometheus rejects
