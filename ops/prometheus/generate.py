#!/usr/bin/env python3
"""Regenerate this project's monitoring from ops/monitoring.yml: a shim over django-celery-ops-monitoring.

    python ops/prometheus/generate.py                        write ops/prometheus/rules/, ops/prometheus/operator/,
                                                             ops/alertmanager/routes.yml and runbooks/
    python ops/prometheus/generate.py --check                exit 1 when a committed file differs
    python ops/prometheus/generate.py --compress 20 --out D  write only the rule files into D, every for: and
                                                             range window divided by 20 (fault drills)

The source is the package's generator (django_celery_ops/monitoring) and this project's config;
thresholds, for: durations, SLOs and links live there. The dashboards are ops/grafana/generate.py's.
"""

import argparse
import sys
from pathlib import Path

from django_celery_ops.monitoring import cli

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "ops" / "monitoring.yml"
KINDS = ("rules", "operator", "alertmanager", "runbooks")  # what this project commits from the generator


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when the committed files differ")
    parser.add_argument("--compress", type=float, metavar="FACTOR", help="divide for: and windows by FACTOR")
    parser.add_argument("--out", type=Path, help="write only the rule files, into this directory")
    args = parser.parse_args(argv)
    if args.compress is not None and (args.compress <= 0 or not args.out):
        parser.error("--compress needs a positive FACTOR and --out (the committed rules stay untouched)")

    command = ["generate", "--config", str(CONFIG)]
    if args.out:
        command += ["--out", str(args.out), "--rules-only"]
        if args.compress:
            command += ["--compress", str(args.compress)]
    else:
        command += ["--out", str(REPO / "ops"), "--runbooks-out", str(REPO / "runbooks")]
        command += [arg for kind in KINDS for arg in ("--only", kind)]
    if args.check:
        command.append("--check")
    return cli.main(command)


if __name__ == "__main__":
    sys.exit(main())
