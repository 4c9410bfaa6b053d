"""The library stands alone: importing it loads nothing of the demo app, and each module names its API."""
import importlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # tests.library.settings is importable from here

CORE = ["conf", "checks", "db", "apps", "middleware", "metrics", "loop_lag", "queue_time", "evidence", "logsafe",
        "multiprocess", "tier", "listen", "env", "metrics_server", "profiling", "slowstack", "slotreader", "exposition", "cardinality"]
EXTRAS = {"sentry": "sentry_sdk", "gunicorn": "gunicorn", "gunicorn_conf": "gunicorn"}

_CHILD = """
import json, sys
import django
django.setup()
import importlib
for name in sys.argv[1:]:
    importlib.import_module("django_celery_ops." + name)
from django.core.management import call_command
call_command("check")
from django.test import Client
Client().get("/ok/")
print(json.dumps(sorted(m for m in sys.modules if m == "app" or m.startswith("app.")
                        or m.split(".")[0] == "django_prometheus")))
"""


def _modules() -> list[str]:
    return CORE + [m for m, dep in EXTRAS.items() if importlib.util.find_spec(dep) is not None]


def test_importing_and_using_the_library_loads_no_demo_app_module():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.library.settings"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    out = subprocess.run([sys.executable, "-c", _CHILD, *_modules()], env=env, capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert json.loads(out.splitlines()[-1]) == []


@pytest.mark.parametrize("name", _modules())
def test_each_module_names_its_public_api(name):
    module = importlib.import_module(f"django_celery_ops.{name}")
    assert module.__all__, name
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, missing


def test_the_middleware_api_the_demo_uses_is_public():
    from django_celery_ops import middleware

    assert {"RequestMiddleware", "count_refused", "instrumentation_failed", "view_name"} <= set(middleware.__all__)


def test_docs_state_the_metric_contract_version_the_package_exports():
    import re
    from pathlib import Path

    import django_celery_ops

    text = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    assert re.search(r"\*\*Metric contract version (\d+)\*\*", text)[1] == django_celery_ops.METRICS_CONTRACT_VERSION
    assert f"django-celery-ops {django_celery_ops.__version__}" in text


def test_the_reference_app_imports_only_the_public_api():
    """app/ and gunicorn.conf.py use the library as an adopter would: names listed in PUBLIC, each in __all__."""
    import ast
    import importlib
    from pathlib import Path

    from django_celery_ops import PUBLIC

    root = Path(__file__).resolve().parents[2]
    used = set()
    for path in [*sorted((root / "app").rglob("*.py")), root / "gunicorn.conf.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("django_celery_ops"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    module, name = (full, "*") if full in PUBLIC else (node.module, alias.name)
                    used.add((module, name, path.name))
    assert used, "the reference app imports nothing from the library"
    for module, name, where in sorted(used):
        assert module in PUBLIC and (name in PUBLIC[module] or name == "*"), f"{where}: {module}.{name} is not public"
        exported = getattr(importlib.import_module(module), "__all__", ())
        assert name == "*" or name in exported, f"{module}.__all__ lacks {name}"
    for module, names in PUBLIC.items():
        loaded = importlib.import_module(module)
        assert all(n == "*" or hasattr(loaded, n) for n in names), module
