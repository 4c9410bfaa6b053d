#!/usr/bin/env python3
"""Write a runnable copy of alertmanager.yml with the inbox URL (and optionally timings) substituted.

    INBOX_URL=http://127.0.0.1:19095 python ops/alertmanager/render.py --out var/alertmanager
    python ops/alertmanager/render.py --out DIR --inbox-url URL --group-wait 1s --group-interval 2s

Alertmanager cannot read environment variables, so the committed alertmanager.yml names the
default inbox (http://127.0.0.1:9095) and this script rewrites every webhook pointing there to
INBOX_URL, keeping the /<receiver> path. Timing options apply to the root route and every child
route (tests and drills use seconds instead of minutes). The templates are copied next to it.
"""

import argparse
import os
import shutil
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "alertmanager.yml"
DEFAULT_INBOX_URL = "http://127.0.0.1:9095"
TIMINGS = ("group_wait", "group_interval", "repeat_interval")


def render(out_dir, inbox_url=None, timings=None, config=CONFIG):
    """Write out_dir/alertmanager.yml and out_dir/templates/; return the config path."""
    inbox_url = (inbox_url or os.environ.get("INBOX_URL") or DEFAULT_INBOX_URL).rstrip("/")
    cfg = yaml.safe_load(Path(config).read_text())
    for receiver in cfg["receivers"]:
        for hook in receiver.get("webhook_configs", []):
            if hook["url"].startswith(DEFAULT_INBOX_URL + "/"):
                hook["url"] = inbox_url + hook["url"][len(DEFAULT_INBOX_URL):]
    for key, value in (timings or {}).items():
        if key not in TIMINGS:
            raise ValueError(f"unknown timing {key}")
        if value:
            for route in [cfg["route"], *cfg["route"].get("routes", [])]:
                route[key] = value

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(config).parent / "templates", out_dir / "templates", dirs_exist_ok=True)
    path = out_dir / "alertmanager.yml"
    header = f"# Rendered by ops/alertmanager/render.py from {Path(config).name}; do not edit.\n"
    path.write_text(header + yaml.safe_dump(cfg, sort_keys=False, width=1000))
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="output directory")
    parser.add_argument("--inbox-url", help="inbox base URL (default: $INBOX_URL or %(default)s)")
    for key in TIMINGS:
        parser.add_argument("--" + key.replace("_", "-"), help=f"override {key} on every route")
    args = parser.parse_args(argv)
    path = render(args.out, args.inbox_url, {key: getattr(args, key) for key in TIMINGS})
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
