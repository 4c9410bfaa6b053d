"""The built wheel holds the library, its console scripts and honest metadata: ranges, extras, classifiers."""
from __future__ import annotations

import email.parser
import zipfile

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.version import Version

CONSOLE_SCRIPTS = {
    "django-celery-ops-exporter": "django_celery_ops.exporter:main",
    "django-celery-ops-metrics": "django_celery_ops.metrics_server:main",
    "django-celery-ops-monitoring": "django_celery_ops.monitoring.cli:main",
}
EXTRAS = {"celery", "gunicorn", "sentry", "profiling", "exporter", "monitoring", "all"}
CORE = {"django", "prometheus-client", "asgiref", "numpy"}  # numpy: the metrics server's slot reader
# The demo stack's dependencies (issue 20): none may reach an adopter, core or extra.
DEMO_ONLY = {"supervisor", "flower", "tornado", "uvicorn", "uvicorn-worker", "dj-database-url", "psycopg",
             "psycopg-binary", "psycopg2", "psycopg2-binary", "humanize", "django-prometheus", "requests",
             "matplotlib"}
# Only in extras, never in the core install.
EXTRA_ONLY = {"celery", "redis", "kombu", "gunicorn", "sentry-sdk", "pyinstrument", "pyyaml", "grafana-foundation-sdk"}
LOWER_BOUNDS = {  # issue 20: the supported floor
    "django": "5.2", "celery": "5.5", "gunicorn": "23", "prometheus-client": "0.21.1", "redis": "5.2.1",
}
CLASSIFIERS = {
    "Programming Language :: Python :: 3.11", "Programming Language :: Python :: 3.12",
    "Programming Language :: Python :: 3.13", "Framework :: Django", "Framework :: Django :: 5.2",
    "Framework :: Django :: 6.0", "Framework :: Django :: 6.1", "Framework :: Celery",
}
EXACT_PIN_OK = {"grafana-foundation-sdk"}  # <build timestamp>!<Grafana version>: a range orders by timestamp


def _canon(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


@pytest.fixture(scope="module")
def dist(wheel):
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.parser.Parser().parsestr(whl.read(f"{info}/METADATA").decode())
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
    return {"names": names, "metadata": metadata, "entry_points": entry_points}


def _requirements(metadata):
    return [Requirement(r) for r in metadata.get_all("Requires-Dist") or []]


def _extras_of(req: Requirement) -> set[str]:
    """The extras under which a requirement applies (empty: the core install)."""
    if req.marker is None:
        return set()
    return {extra for extra in EXTRAS if req.marker.evaluate({"extra": extra})} or {"?"}


def test_wheel_holds_the_import_package_and_its_data(dist):
    names = set(dist["names"])
    for module in ("__init__", "apps", "conf", "checks", "middleware", "gunicorn_conf", "celery", "sentry",
                   "exporter", "metrics_server", "monitoring/__init__", "monitoring/cli", "monitoring/config"):
        assert f"django_celery_ops/{module}.py" in names, f"the wheel lacks django_celery_ops/{module}.py"
    assert "django_celery_ops/monitoring/defaults.yml" in names  # package data, read at run time
    assert any(n.startswith("django_celery_ops/monitoring/runbooks/") and n.endswith(".md") for n in names)
    assert "django_celery_ops/py.typed" in names
    assert not [n for n in names if n.split("/")[0] in ("app", "tests", "ops")], "the demo app leaked into the wheel"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_wheel_declares_the_console_scripts(dist):
    section, scripts = None, {}
    for line in dist["entry_points"].splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and section == "console_scripts":
            name, _, target = line.partition("=")
            scripts[name.strip()] = target.strip()
    assert scripts == CONSOLE_SCRIPTS


def test_metadata_names_the_distribution_and_supported_pythons(dist):
    md = dist["metadata"]
    assert md["Name"] == "django-celery-ops"
    assert Version(md["Version"]) >= Version("0.2")
    assert md["Requires-Python"].replace(" ", "") == ">=3.11"
    assert CLASSIFIERS <= set(md.get_all("Classifier")), set(md.get_all("Classifier"))
    assert set(md.get_all("Provides-Extra")) == EXTRAS


def test_core_install_is_the_web_instrumentation_and_its_metrics_server_only(dist):
    core = {_canon(r.name) for r in _requirements(dist["metadata"]) if not _extras_of(r)}
    assert core == CORE, f"core Requires-Dist: {sorted(core)}"


def test_no_demo_dependency_in_any_extra(dist):
    named = {_canon(r.name) for r in _requirements(dist["metadata"])}
    assert not named & DEMO_ONLY, f"demo-stack packages in Requires-Dist: {sorted(named & DEMO_ONLY)}"
    for req in _requirements(dist["metadata"]):
        if _canon(req.name) in EXTRA_ONLY:
            assert _extras_of(req), f"{req} is in the core install; it belongs to an extra"


def test_extras_bring_what_they_name(dist):
    by_extra: dict[str, set[str]] = {}
    for req in _requirements(dist["metadata"]):
        for extra in _extras_of(req):
            by_extra.setdefault(extra, set()).add(_canon(req.name))
    assert "?" not in by_extra, "a Requires-Dist marker applies to no known extra"
    assert {"celery", "redis"} <= by_extra["celery"]
    assert {"celery", "redis"} <= by_extra["exporter"]
    assert by_extra["gunicorn"] >= {"gunicorn"}
    assert by_extra["sentry"] >= {"sentry-sdk"}
    assert by_extra["profiling"] >= {"pyinstrument"}
    assert by_extra["monitoring"] >= {"pyyaml", "grafana-foundation-sdk"}
    everything = set().union(*(v for k, v in by_extra.items() if k != "all"))
    # [all] is either the self-reference django-celery-ops[...] or every extra's packages
    assert by_extra["all"] >= everything or by_extra["all"] == {"django-celery-ops"}


def test_ranges_have_the_declared_floors_and_no_unexplained_ceiling(dist):
    for req in _requirements(dist["metadata"]):
        name = _canon(req.name)
        if name == "django-celery-ops":
            continue
        ops = {spec.operator for spec in req.specifier}
        if name in EXACT_PIN_OK:
            assert ops == {"=="}, req
            continue
        assert ops and ops <= {">=", "!="}, f"{req}: lower bounds only (an upper pin needs a known break)"
        if name in LOWER_BOUNDS:
            (floor,) = [s.version for s in req.specifier if s.operator == ">="]
            assert Version(floor) == Version(LOWER_BOUNDS[name]), f"{req}: floor {floor}, declared {LOWER_BOUNDS[name]}"
    assert Marker('extra == "celery"').evaluate({"extra": "celery"})  # packaging evaluates extras as we read them
