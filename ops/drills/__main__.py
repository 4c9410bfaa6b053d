"""`python -m ops.drills [NAME ...]`: start a time-compressed stack, run drills, write the report.

With no NAME a healthy-load run comes first (on the fresh stack: the SLO burn the drills cause
fades over compressed hours), then every drill. --parallel runs the whole catalog on two stacks
at once, a healthy-load run then one lane of drills each (scenarios.LANES), as the tests do.
The report goes to var/reports/drills-<time>/ (report.md, report.json, one PNG per drill).
"""
import argparse
import sys
import time
from pathlib import Path

from ops.drills.harness import DrillFailed, Stack
from ops.drills.lanes import LaneRun, start_stacks, stop_stacks
from ops.drills.procs import ROOT
from ops.drills.runner import run_drill, run_healthy, write_report
from ops.drills.scenarios import DRILLS, LANES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"drills to run (default all): {', '.join(DRILLS)}")
    parser.add_argument("--no-healthy", action="store_true", help="skip the healthy-load run")
    parser.add_argument("--healthy", action="store_true", help="run the healthy-load run before named drills too")
    parser.add_argument("--healthy-seconds", type=float, default=90.0)
    parser.add_argument("--var", type=Path, default=None, help="the drill stack's var folder")
    parser.add_argument("--parallel", action="store_true",
                        help=f"every drill, on {len(LANES)} stacks at once (one lane each, scenarios.LANES)")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in DRILLS]
    if unknown:
        parser.error(f"unknown drill {', '.join(unknown)}; known: {', '.join(DRILLS)}")
    if args.parallel and args.names:
        parser.error("--parallel runs the whole catalog: give no NAME")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    var = args.var or ROOT / "var" / "drills" / stamp
    if args.parallel:
        return _parallel(var, stamp, None if args.no_healthy else args.healthy_seconds)
    print(f"drills: starting a time-compressed stack under {var}", flush=True)
    stack = Stack.start(var)
    results = []
    try:
        if (args.healthy or not args.names) and not args.no_healthy:
            print("drills: healthy load ...", flush=True)
            results.append(run_healthy(stack, args.healthy_seconds))
        for name in args.names or DRILLS:
            print(f"drills: {name} ...", flush=True)
            result = run_drill(stack, DRILLS[name])
            print(f"drills: {name}: {'ok' if result.ok else 'FAILED: ' + str(result.error)}", flush=True)
            results.append(result)
    except DrillFailed as exc:
        print(f"drills: aborted: {exc}", file=sys.stderr)
        return 2
    finally:
        stack.stop()
        out = write_report(results, ROOT / "var" / "reports" / f"drills-{stamp}",
                           note="Time-compressed stack (rules 20x faster, 1 s scrapes); see docs/drills.md.")
        print(f"drills: report in {out}/report.md")
    return 0 if all(r.ok for r in results) else 1


def _parallel(var: Path, stamp: str, healthy_seconds: float | None) -> int:
    print(f"drills: starting {len(LANES)} time-compressed stacks under {var}", flush=True)
    stacks = start_stacks([var / f"stack-{n + 1}" for n in range(len(LANES))])
    run = None
    failed = False  # a drill that failed or did not run
    try:
        run = LaneRun(stacks, LANES, healthy_seconds)
        for name in DRILLS:
            try:
                result = run.result(name, timeout=None)
            except Exception as exc:  # whatever kept this drill from running: report it, go on with the next
                print(f"drills: {name}: did not run: {type(exc).__name__}: {exc}", flush=True)
                failed = True
                continue
            failed = failed or not result.ok
            print(f"drills: {name} ({result.stack}): {'ok' if result.ok else 'FAILED: ' + str(result.error)}",
                  flush=True)
    finally:
        if run is not None:
            run.stop()
        stop_stacks(stacks)
        if run is not None and run.running:  # a drill still ran against the stopped stacks: let it end
            run.stop(join_timeout=60)
        stop_stacks(stacks)  # the final sweep: what such a drill (or a dying program) left behind
        results = run.results() if run is not None else []
        out = write_report(results, ROOT / "var" / "reports" / f"drills-{stamp}",
                           note=f"{len(stacks)} time-compressed stacks at once (rules 20x faster, 1 s scrapes), "
                                "one lane of drills each; see docs/drills.md.")
        print(f"drills: report in {out}/report.md")
    complete = len(results) == len(DRILLS) + (len(LANES) if healthy_seconds else 0)
    return 0 if not failed and complete and all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
