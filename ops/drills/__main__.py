"""`python -m ops.drills [NAME ...]`: start a time-compressed stack, run drills, write the report.

With no NAME a healthy-load run comes first (on the fresh stack: the SLO burn the drills cause
fades over compressed hours), then every drill.
The report goes to var/reports/drills-<time>/ (report.md, report.json, one PNG per drill).
"""
import argparse
import sys
import time
from pathlib import Path

from ops.drills.harness import DrillFailed, Stack
from ops.drills.procs import ROOT
from ops.drills.runner import run_drill, run_healthy, write_report
from ops.drills.scenarios import DRILLS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"drills to run (default all): {', '.join(DRILLS)}")
    parser.add_argument("--no-healthy", action="store_true", help="skip the healthy-load run")
    parser.add_argument("--healthy", action="store_true", help="run the healthy-load run before named drills too")
    parser.add_argument("--healthy-seconds", type=float, default=90.0)
    parser.add_argument("--var", type=Path, default=None, help="the drill stack's var folder")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in DRILLS]
    if unknown:
        parser.error(f"unknown drill {', '.join(unknown)}; known: {', '.join(DRILLS)}")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    var = args.var or ROOT / "var" / "drills" / stamp
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


if __name__ == "__main__":
    sys.exit(main())
