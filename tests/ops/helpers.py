"""Paths and small helpers shared by the monitoring tests (tests/ops)."""

import os
import re
import subprocess
from pathlib import Path

from tests.ops.procs import ALERTMANAGER_DIR, PROMETHEUS_DIR, REPO

HERE = Path(__file__).resolve().parent
RULES_DIR = PROMETHEUS_DIR / "rules"
PROMTOOL_TESTS_DIR = PROMETHEUS_DIR / "tests"
PANELS_FILE = REPO / "ops" / "grafana" / "panels.yml"
ALERTMANAGER_CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"
COMPONENTS = ("gunicorn", "django", "celery", "jobs", "redis", "meta")
# Where the shared design folder sits: beside the repository (development and CI), or DESIGN_MD.
DESIGN_MD = Path(os.environ.get("DESIGN_MD", REPO.parent / "shared" / "DESIGN.md"))


def run(*cmd, env=None, cwd=REPO):
    """Run a command; return the CompletedProcess with text output (never raises on failure)."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
                          check=False)


def clean_env():
    """Return os.environ without the link overrides, so generation reproduces the committed files."""
    return {k: v for k, v in os.environ.items() if k not in ("RUNBOOK_BASE_URL", "GRAFANA_BASE_URL")}


def read_catalog_from_design(path):
    """Return the alert names of the catalog table in DESIGN.md."""
    text = path.read_text()
    section = text.split("## Alert catalog", 1)[1].split("\n## ", 1)[0]
    return [m[1] for m in re.finditer(r"^\| ([A-Z][A-Za-z]+) \|", section, re.MULTILINE)]
