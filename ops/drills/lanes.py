"""Run the drill catalog on several stacks at once: a lane is one stack running its share of the drills.

A drill mostly waits (for the rules' compressed windows and `for:` durations, for a real queue
wait of 60 s), so two stacks on two cores get through the catalog in about half the time. The
stacks share nothing but the machine: each has its own ports, var folder, Redis, database,
Prometheus, Alertmanager and inbox, so a fault injected in one lane cannot fire, hide or resolve
an alert of another. Each lane first runs the healthy load on its fresh stack, then its drills
in order (scenarios.LANES), exactly as a single stack runs them all (runner.run_drill).
"""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ops.drills.harness import DrillFailed, Result, Stack
from ops.drills.runner import run_drill, run_healthy
from ops.drills.scenarios import DRILLS


def check_plan(lanes: list[list[str]]) -> None:
    """Every drill of the catalog in exactly one lane."""
    planned = [name for lane in lanes for name in lane]
    if sorted(planned) != sorted(DRILLS):
        missing, doubled = set(DRILLS) - set(planned), {n for n in planned if planned.count(n) > 1}
        raise ValueError(f"the lanes must hold every drill once: missing {sorted(missing)}, twice {sorted(doubled)}, "
                         f"unknown {sorted(set(planned) - set(DRILLS))}")


def start_stacks(var_dirs: list[Path]) -> list[Stack]:
    """Start one stack per var folder, all at once; if any fails, stop the others and raise its error."""
    with ThreadPoolExecutor(len(var_dirs)) as pool:
        futures = [pool.submit(Stack.start, var_dir) for var_dir in var_dirs]
    stacks, errors = [], []
    for future in futures:
        try:
            stacks.append(future.result())
        except BaseException as exc:  # noqa: BLE001 - the first error is raised below, after the clean-up
            errors.append(exc)
    if errors:
        stop_stacks(stacks)
        raise errors[0]
    return stacks


def stop_stacks(stacks: list[Stack]) -> None:
    """Stop the stacks at once (each stop is bounded: Stack.stop)."""
    if stacks:
        with ThreadPoolExecutor(len(stacks)) as pool:
            list(pool.map(lambda stack: stack.stop(), stacks))


class LaneRun:
    """Lanes running in background threads; result(name) waits for one drill's Result.

    Every future is always set: with the drill's Result, or with the exception that kept it from
    running (an aborted run, a stack that never got quiet).
    """

    def __init__(self, stacks: list[Stack], lanes: list[list[str]], healthy_seconds: float | None):
        check_plan(lanes)
        if len(stacks) != len(lanes):
            raise ValueError(f"{len(lanes)} lanes need {len(lanes)} stacks, not {len(stacks)}")
        self.stacks, self.lanes = stacks, lanes
        self.healthy: list[Future] = [Future() for _ in lanes]
        self.drills: dict[str, Future] = {name: Future() for lane in lanes for name in lane}
        self._abort = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n, healthy_seconds), name=f"drill-lane-{n + 1}",
                                          daemon=True) for n in range(len(lanes))]
        for thread in self._threads:
            thread.start()

    def _run(self, n: int, healthy_seconds: float | None) -> None:
        stack, label = self.stacks[n], f"stack {n + 1}"
        futures = [self.healthy[n]] + [self.drills[name] for name in self.lanes[n]]
        try:
            self._settle(self.healthy[n], label, lambda: run_healthy(stack, healthy_seconds) if healthy_seconds
                         else None)
            for name in self.lanes[n]:
                self._settle(self.drills[name], label, lambda name=name: run_drill(stack, DRILLS[name]))
        finally:  # whatever ended the lane early, nobody waits forever
            for future in futures:
                if not future.done():
                    future.set_exception(DrillFailed(f"{label}'s lane ended before this ran"))

    def _settle(self, future: Future, label: str, run) -> None:
        if self._abort.is_set():
            future.set_exception(DrillFailed("the drill run was stopped before this ran"))
            return
        try:
            result = run()
            if result is not None:
                result.stack = label
            future.set_result(result)
        except Exception as exc:  # this drill's failure; the lane goes on with the next one
            future.set_exception(exc)
        except BaseException as exc:  # KeyboardInterrupt, SystemExit: nobody waits for this drill forever
            if not future.done():
                failed = DrillFailed(f"did not run to the end: {type(exc).__name__}: {exc}")
                failed.__cause__ = exc
                future.set_exception(failed)
            raise  # and the lane ends (its _run sets the futures of the drills after this one)

    def result(self, name: str, timeout: float) -> Result:
        """Wait for the drill's Result (raises what kept it from running, or TimeoutError)."""
        return self.drills[name].result(timeout)

    def results(self) -> list[Result]:
        """The Results finished so far, lane by lane, each lane's healthy load first."""
        done = []
        for n, lane in enumerate(self.lanes):
            for future in [self.healthy[n]] + [self.drills[name] for name in lane]:
                if future.done() and not future.exception() and future.result() is not None:
                    done.append(future.result())
        return done

    def stop(self, join_timeout: float = 30.0) -> None:
        """No drill starts any more; wait (bounded) for the running ones. The caller stops the stacks."""
        self._abort.set()
        for thread in self._threads:
            thread.join(join_timeout)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)
