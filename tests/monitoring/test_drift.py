"""This project's ops/ and runbooks/ are the generator's output for ops/monitoring.yml: no hand edit drifts."""

import difflib

import yaml

from django_celery_ops.monitoring import alertmanager, cli, config
from tests.monitoring.support import PROJECT_CONFIG, REPO

OPS = REPO / "ops"
# What the project commits from this generator; its dashboards are checked by tests/dashboards.
KINDS = ("rules", "operator", "alertmanager", "runbooks")


def _generate():
    return cli.generate(config.load(PROJECT_CONFIG), PROJECT_CONFIG.name, only=KINDS)


def test_committed_monitoring_files_are_the_generators_output():
    files = _generate()
    stale = []
    for rel, text in files.items():
        path = (REPO / rel) if rel.startswith("runbooks/") else (OPS / rel)
        committed = path.read_text() if path.is_file() else None
        if committed != text:
            diff = "".join(difflib.unified_diff((committed or "").splitlines(True), text.splitlines(True),
                                                f"committed/{rel}", f"generated/{rel}", n=1))
            stale.append(diff[:2000])
    assert not stale, "regenerate with `python ops/prometheus/generate.py`:\n" + "\n".join(stale)


def test_no_generated_folder_holds_a_file_the_generator_does_not_write():
    files = set(_generate())
    leftovers = [p for p in (OPS / "prometheus" / "rules").glob("*.yml") if f"prometheus/rules/{p.name}" not in files]
    leftovers += [p for p in (OPS / "prometheus" / "operator").glob("*.yaml")
                  if f"prometheus/operator/{p.name}" not in files]
    leftovers += [p for p in (REPO / "runbooks").glob("*.md") if f"runbooks/{p.name}" not in files]
    assert not leftovers


def test_the_shim_check_passes_on_the_committed_files():
    assert cli.main(["generate", "--config", str(PROJECT_CONFIG), "--out", str(OPS), "--runbooks-out",
                     str(REPO / "runbooks"), *[a for k in KINDS for a in ("--only", k)], "--check"]) == 0


def test_alertmanager_yml_routes_and_inhibits_as_the_generated_snippet():
    """The hand-written alertmanager.yml (receivers, comments) keeps the generated route tree and inhibitions."""
    committed = yaml.safe_load((OPS / "alertmanager" / "alertmanager.yml").read_text())
    snippet = alertmanager.snippet(config.load(PROJECT_CONFIG))
    assert committed["route"] == snippet["route"]
    assert committed["inhibit_rules"] == snippet["inhibit_rules"]
    assert yaml.safe_load((OPS / "alertmanager" / "routes.yml").read_text()) == snippet
