"""The drills' process helpers: a pid is signalled only while it is the process recorded (ops/drills/procs.py)."""
import shutil
import subprocess
import time

import pytest

from ops.drills import procs
from ops.drills.harness import Stack
from ops.drills.procs import (Proc, _stat_fields, alive_pids, identities, same_processes, signal_process, start_time,
                              stop_pids)


@pytest.fixture
def spawn():
    started = []

    def run(*args, **kwargs):
        proc = subprocess.Popen(list(args), stdin=subprocess.DEVNULL, **kwargs)
        started.append(proc)
        return proc
    yield run
    for proc in started:
        proc.kill()
        proc.wait()


def test_stat_fields_are_split_after_the_last_parenthesis():
    line = b"4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 1000 0\n"
    fields = _stat_fields(line)
    assert fields[0] == b"S" and int(fields[19]) == 987654


def test_start_time_of_a_process_whose_name_has_spaces_and_parens(spawn, tmp_path):
    odd = tmp_path / "sl (x) y)"
    shutil.copy(shutil.which("sleep"), odd)
    proc = spawn(str(odd), "30")
    started = start_time(proc.pid)
    assert started is not None and started > 0
    assert identities([proc.pid]) == {proc.pid: started}
    assert same_processes({proc.pid: started}) == {proc.pid}


def test_a_reused_pid_is_not_the_same_process(spawn):
    proc = spawn("sleep", "30")
    started = start_time(proc.pid)
    assert same_processes({proc.pid: started + 1}) == set()  # as if another process had had the pid
    assert not signal_process(proc.pid, started + 1, 9)
    assert proc.poll() is None


def test_a_dead_or_zombie_process_is_gone(spawn):
    proc = spawn("sleep", "0")
    started = start_time(proc.pid)
    deadline = time.monotonic() + 5
    while proc.pid in alive_pids([proc.pid]) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert same_processes({proc.pid: started}) == set()  # a zombie, not reaped yet
    assert identities([proc.pid]) == {}
    proc.wait()
    assert start_time(proc.pid) is None and same_processes({proc.pid: started}) == set()


def test_stop_pids_terms_then_kills_and_spares_a_reused_pid(spawn):
    polite = spawn("sleep", "30")
    stubborn = spawn("sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30")
    bystander = spawn("sleep", "30")
    time.sleep(0.2)  # the trap is set
    recorded = identities([polite.pid, stubborn.pid])
    recorded[bystander.pid] = start_time(bystander.pid) - 1  # collected once, then the pid was reused

    def find():
        alive = {pid for pid, proc in ((p.pid, p) for p in (polite, stubborn, bystander)) if proc.poll() is None}
        return {pid: recorded[pid] for pid in alive}
    killed = stop_pids(find, grace=1.0)
    assert killed == {stubborn.pid}
    assert polite.wait(5) == -15 and stubborn.wait(5) == -9
    assert bystander.poll() is None


def test_stop_pids_records_bare_pids_when_first_seen(spawn):
    proc = spawn("sleep", "30")
    assert stop_pids(lambda: {proc.pid} if proc.poll() is None else set(), grace=2.0) == set()
    assert proc.wait(5) == -15


def _fake_supervisord(tmp_path, env=None):
    """A stand-in for supervisord: a child of ours with a child in a session of its own (out of its group)."""
    env = dict(env or {"PATH": "/usr/bin:/bin"})
    proc = Proc("up", ["sh", "-c", "setsid sleep 60 & wait"], env, tmp_path)
    deadline = time.monotonic() + 5
    while len(procs.process_tree(proc.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    (child,) = procs.process_tree(proc.pid) - {proc.pid}
    return proc, child


def test_stack_stop_stops_supervisord_and_its_escaped_children(tmp_path):
    proc, child = _fake_supervisord(tmp_path)
    stack = Stack(env={"OPS_VAR_DIR": str(tmp_path)}, proc=proc)
    stack.stop(grace=2.0)
    assert not proc.alive()
    assert alive_pids([child]) == set()


def test_a_second_stack_stop_signals_nothing_unrelated(tmp_path, spawn, monkeypatch):
    proc, child = _fake_supervisord(tmp_path)
    stack = Stack(env={"OPS_VAR_DIR": str(tmp_path)}, proc=proc)
    stack.stop(grace=2.0)
    bystander = spawn("sleep", "30")
    # as if supervisord's pid had been reused by a process with the bystander as its child
    monkeypatch.setattr("ops.drills.harness.process_tree", lambda pid: {pid, bystander.pid})
    stack.stop(grace=2.0)
    assert bystander.poll() is None


def test_a_second_stack_stop_still_sweeps_the_stacks_leftovers(tmp_path, spawn):
    proc, _ = _fake_supervisord(tmp_path)
    stack = Stack(env={"OPS_VAR_DIR": str(tmp_path)}, proc=proc)
    stack.stop(grace=2.0)
    straggler = spawn("sleep", "30", env={"PATH": "/usr/bin:/bin", "OPS_VAR_DIR": str(tmp_path)})
    time.sleep(0.1)
    stack.stop(grace=2.0)
    assert straggler.wait(5) == -15
