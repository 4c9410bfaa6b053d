"""Lanes and the parallel CLI end every drill with a result, whatever happens in it (fakes, no stack)."""
import threading

import pytest

import ops.drills.__main__ as cli
from ops.drills import harness, lanes
from ops.drills.harness import DrillFailed, Result, Stack
from ops.drills.scenarios import DRILLS, LANES


class FakeStack:
    def __init__(self, n):
        self.n, self.stops = n, 0


@pytest.fixture
def quiet_threads(monkeypatch):
    """Exceptions that end a lane thread are expected here: keep them, do not print them."""
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_type))
    return seen


def fake_drills(monkeypatch, raising: dict):
    def run_drill(stack, drill):
        if drill.name in raising:
            raise raising[drill.name]
        return Result(name=drill.name, expected=[])
    monkeypatch.setattr(lanes, "run_drill", run_drill)
    monkeypatch.setattr(lanes, "run_healthy", lambda stack, seconds: Result(name="healthy", expected=[]))


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt("stop"), SystemExit(3)])
def test_an_interrupted_drill_sets_its_future_and_ends_its_lane(monkeypatch, quiet_threads, interrupt):
    first, *rest = LANES[0]
    fake_drills(monkeypatch, {first: interrupt})
    run = lanes.LaneRun([FakeStack(1), FakeStack(2)], LANES, healthy_seconds=None)
    with pytest.raises(DrillFailed, match=f"did not run to the end: {type(interrupt).__name__}") as caught:
        run.result(first, timeout=10)
    assert caught.value.__cause__ is interrupt
    for name in rest:
        with pytest.raises(DrillFailed, match="lane ended before this ran"):
            run.result(name, timeout=10)
    for name in LANES[1]:
        assert run.result(name, timeout=10).ok
    run.stop(join_timeout=10)
    assert not run.running and quiet_threads == [type(interrupt)]  # re-raised: the lane thread ended on it


def run_parallel(monkeypatch, tmp_path, raising):
    fake_drills(monkeypatch, raising)
    calls, reports = [], []
    stacks = [FakeStack(1), FakeStack(2)]
    monkeypatch.setattr(cli, "start_stacks", lambda var_dirs: stacks)
    monkeypatch.setattr(cli, "stop_stacks", lambda s: calls.append(("stop_stacks", list(s))))
    monkeypatch.setattr(cli, "write_report", lambda results, out, note: reports.append(results) or tmp_path)
    return cli._parallel(tmp_path, "stamp", None), calls, reports


def test_parallel_reports_every_drill_whatever_one_raises(monkeypatch, tmp_path, capsys):
    broken = LANES[0][0]
    code, calls, reports = run_parallel(monkeypatch, tmp_path, {broken: RuntimeError("boom")})
    out = capsys.readouterr().out
    assert f"drills: {broken}: did not run: RuntimeError: boom" in out
    lines = out.splitlines()
    for name in DRILLS:
        if name != broken:
            assert any(line.startswith(f"drills: {name} (stack ") and line.endswith("): ok") for line in lines), name
    assert code == 1
    assert len(calls) >= 2 and calls[-1][0] == "stop_stacks"  # stopped, then swept once more
    assert len(reports) == 1 and len(reports[0]) == len(DRILLS) - 1


def test_parallel_succeeds_when_every_drill_does(monkeypatch, tmp_path, capsys):
    code, calls, reports = run_parallel(monkeypatch, tmp_path, {})
    assert code == 0 and len(reports[0]) == len(DRILLS)
    assert "did not run" not in capsys.readouterr().out


def test_stack_start_tries_once_more_on_fresh_ports_after_stopping_the_failed_attempt(monkeypatch, tmp_path):
    events = []

    class FakeProc:
        def __init__(self, name, args, env, log_dir):
            self.env = env
            events.append(("start", env["WEB_PORT"]))

    def wait_ready(self, timeout):
        if sum(1 for e in events if e[0] == "start") == 1:
            raise DrillFailed("a target is down (port taken)")

    monkeypatch.setattr(harness, "Proc", FakeProc)
    monkeypatch.setattr(Stack, "wait_ready", wait_ready)
    monkeypatch.setattr(Stack, "stop", lambda self, grace=0: events.append(("stop", self.env["WEB_PORT"])))
    stack = Stack.start(tmp_path)
    (_, first), (_, stopped), (_, second) = events
    assert [e[0] for e in events] == ["start", "stop", "start"]
    assert stopped == first != second == stack.env["WEB_PORT"]


def test_stack_start_gives_up_after_the_second_failure(monkeypatch, tmp_path):
    starts = []
    monkeypatch.setattr(harness, "Proc", lambda *args: starts.append(args))
    monkeypatch.setattr(Stack, "wait_ready", lambda self, timeout: (_ for _ in ()).throw(DrillFailed("down")))
    monkeypatch.setattr(Stack, "stop", lambda self, grace=0: None)
    with pytest.raises(DrillFailed, match="down"):
        Stack.start(tmp_path)
    assert len(starts) == 2


def test_an_interrupted_start_is_not_retried(monkeypatch, tmp_path):
    starts, stops = [], []
    monkeypatch.setattr(harness, "Proc", lambda *args: starts.append(args))
    monkeypatch.setattr(Stack, "wait_ready", lambda self, timeout: (_ for _ in ()).throw(KeyboardInterrupt()))
    monkeypatch.setattr(Stack, "stop", lambda self, grace=0: stops.append(self))
    with pytest.raises(KeyboardInterrupt):
        Stack.start(tmp_path)
    assert len(starts) == 1 and len(stops) == 1
