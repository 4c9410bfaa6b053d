"""The library's version matrix: `make test-matrix` (nox -f noxfile.py).

Each cell is one interpreter, one Django series and a set of pins for the rest. It builds the
wheel from package/ with that interpreter, installs it with every extra into a fresh virtualenv
under the cell's pins (pip fails rather than move one), and runs the library's own tests (those
that need no demo app) and the second-project adoption test (tests/adoption) on that wheel,
whose own throw-away project is pinned the same way.

Interpreters are pyenv's, by full path: the python3.12/python3.13 shims fail on these machines
(pyenv's global version is 3.11.7). A missing interpreter is an error naming it, never a skip.
"""
from __future__ import annotations

import os
import re
import shutil
import time
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
PACKAGE = ROOT / "package"
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"

nox.options.error_on_missing_interpreters = True  # a missing interpreter fails the run, naming it
nox.options.download_python = "never"  # never fetch a standalone build in its place
nox.options.sessions = ["matrix"]
nox.needs_version = ">=2024.3.2"

# The library's own test suites that run outside the demo app: (pytest config, paths). Each must
# exist: a missing one fails the cell, never a silent skip.
SUITES = [
    ("tests/adoption/pytest.ini", ["tests/adoption"]),
    ("tests/library/pytest.ini", ["tests/library"]),
]
TEST_DEPS = ["pytest>=8", "pytest-timeout>=2.3", "pytest-django>=4.8", "requests>=2.31", "PyYAML>=6.0", "packaging>=23",
             "psycopg[binary]>=3.1"]
# Floors of these come from package/pyproject.toml (the "lowest" cell pins them exactly).
LOWEST = ("celery", "gunicorn", "numpy", "prometheus-client", "pyinstrument", "redis")


def _floors() -> dict[str, str]:
    """{name: floor} of every `name>=floor` in the library's dependencies and extras."""
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    floors = {}
    for spec in specs:
        m = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)", spec)
        if m:
            floors[m[1].lower()] = m[2]
    return floors


def _cell_requirements(django: str, pins: str) -> list[str]:
    """What the cell (and its second project) pins: a Django series, and the rest lowest or newest."""
    reqs = [django]
    if pins == "lowest":
        floors = _floors()
        missing = [name for name in LOWEST if name not in floors]
        assert not missing, f"package/pyproject.toml declares no floor for {missing}"
        reqs += [f"{name}=={floors[name]}" for name in LOWEST]
    else:
        reqs += list(LOWEST)  # newest releases: a fresh virtualenv resolves to them
    return reqs


CELLS = [  # (interpreter, Django series, pins of the rest)
    (str(PYENV / "3.11.7/bin/python"), "Django>=5.2,<5.3", "lowest"),
    (str(PYENV / "3.12.1/bin/python"), "Django>=6.0,<6.1", "newest"),
    (str(PYENV / "3.13.0/bin/python"), "Django>=6.1,<6.2", "newest"),
]
IDS = ["py3.11-django5.2-lowest", "py3.12-django6.0-newest", "py3.13-django6.1-newest"]


def _build_wheel(session: nox.Session) -> Path:
    """Build the wheel with the cell's interpreter from a clean copy of package/."""
    tmp = Path(session.create_tmp()).resolve()
    src, dist = tmp / "package-src", tmp / "dist"
    shutil.rmtree(src, ignore_errors=True)
    shutil.rmtree(dist, ignore_errors=True)
    shutil.copytree(PACKAGE, src, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    session.run("python", "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(dist))
    (wheel,) = dist.glob("django_celery_ops-*.whl")
    return wheel


@nox.session(venv_backend="venv")
@nox.parametrize("python,django,pins", CELLS, ids=IDS)
def matrix(session: nox.Session, django: str, pins: str) -> None:
    """One cell: build the wheel, install it under the cell's pins, run the library and adoption tests."""
    started = time.monotonic()
    interpreter = session.python  # the full path of the cell's interpreter (the venv's base)
    requirements = _cell_requirements(django, pins)
    # ADOPTION_WHEEL=path tests a wheel built elsewhere (a release artefact) instead of building one.
    wheel = Path(os.environ["ADOPTION_WHEEL"]).resolve() if os.environ.get("ADOPTION_WHEEL") else _build_wheel(session)
    tmp = Path(session.create_tmp()).resolve()
    # The cell's own pins as constraints: the install below fails rather than move one.
    session.install("-q", *requirements, *TEST_DEPS)
    frozen = session.run("python", "-m", "pip", "freeze", "--exclude-editable", silent=True)
    constraints = tmp / "cell-constraints.txt"
    constraints.write_text(frozen)
    session.install("-q", "-c", str(constraints), f"django-celery-ops[all] @ {wheel.as_uri()}")
    session.run("python", "-c", _VERSIONS)
    env = {
        "ADOPTION_WHEEL": str(wheel),
        "ADOPTION_PYTHON": interpreter,
        "ADOPTION_REPORT_DIR": str(tmp / "adoption-report"),  # the second project's pins and pip output
        # The second project pins what such a project has: Django, Celery with Redis, gunicorn; in the
        # lowest cell also the library's own floors, so that the wheel is tested on them.
        "ADOPTION_PROJECT_REQUIREMENTS": " ".join(
            r.replace("celery", "celery[redis]", 1) if r.startswith("celery") else r
            for r in requirements if pins == "lowest" or not r.startswith(("prometheus-client", "redis"))),
    }
    for config, paths in SUITES:
        if not (ROOT / config).is_file():
            session.error(f"test suite config {config} is missing")
        session.run("pytest", "-c", config, "-p", "no:cacheprovider", *paths, *session.posargs, env=env)
    session.log(f"cell {session.name}: {time.monotonic() - started:.0f} s")


_VERSIONS = """\
import importlib.metadata as m, sys
names = ["Django", "celery", "kombu", "gunicorn", "prometheus-client", "redis", "django-celery-ops"]
print("cell: Python", sys.version.split()[0], *(f"{n} {m.version(n)}" for n in names))
"""
