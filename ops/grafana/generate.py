#!/usr/bin/env python3
"""Write this project's Grafana dashboards and provisioning from ops/monitoring.yml.

    python ops/grafana/generate.py            write dashboards/*.json and provisioning/**/*.yml
    python ops/grafana/generate.py --check    exit 1 when the committed files differ

The dashboards are django_celery_ops.monitoring.dashboards (the same build_all() that
`django-celery-ops-monitoring generate` calls); this script adds the provisioning of the
docker-compose Grafana, whose Prometheus scrape interval it reads from ops/prometheus/prometheus.yml.
"""

import argparse
import sys
from pathlib import Path

import yaml

from django_celery_ops.monitoring import config, dashboards

OPS = Path(__file__).resolve().parents[1]
CONFIG = OPS / "monitoring.yml"
GRAFANA = OPS / "grafana"


def outputs(cfg=None):
    """Return {path: text} of every generated file under ops/grafana."""
    cfg = cfg or config.load(CONFIG)
    files = {GRAFANA / "dashboards" / name: dashboards.render(data) for name, data in dashboards.build_all(cfg).items()}
    interval = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())["global"]["scrape_interval"]
    files.update({GRAFANA / "provisioning" / rel: text
                  for rel, text in dashboards.provisioning(cfg, scrape_interval=interval).items()})
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail when the committed files differ")
    args = parser.parse_args(argv)
    files = outputs()
    if args.check:
        stale = [p for p, text in files.items() if not p.is_file() or p.read_text() != text]
        stale += [p for p in (GRAFANA / "dashboards").glob("*.json") if p not in files]
        if stale:
            names = ", ".join(str(p.relative_to(GRAFANA)) for p in sorted(stale))
            print(f"dashboards out of date: {names}; run python ops/grafana/generate.py", file=sys.stderr)
            return 1
        return 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
