"""The built wheel, shared by every adoption test of a session (nox passes a prebuilt one in ADOPTION_WHEEL)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.adoption.project import run

PACKAGE = Path(__file__).resolve().parents[2] / "package"


def build_wheel(out: Path) -> Path:
    """Build the library's wheel from a clean copy of package/ (no build/ or egg-info of a previous build)."""
    src = out / "src"
    shutil.copytree(PACKAGE, src, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__"))
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src), "-w", str(out / "dist")])
    (wheel,) = (out / "dist").glob("django_celery_ops-*.whl")
    return wheel


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    given = os.environ.get("ADOPTION_WHEEL")
    if given:
        path = Path(given)
        assert path.is_file(), f"ADOPTION_WHEEL={given} is not a file"
        return path
    return build_wheel(tmp_path_factory.mktemp("wheel"))
