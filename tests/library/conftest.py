"""The library's tests run on tests/library/settings.py alone: nothing of the demo app may load.

    pytest tests/library --ds=tests.library.settings

Under another settings module (the demo's, as `pytest tests` uses) this folder is not collected:
its URLs, databases and settings are its own.
"""
import sys

import pytest
from django.conf import settings

SETTINGS = "tests.library.settings"

if settings.SETTINGS_MODULE != SETTINGS:
    collect_ignore_glob = ["*.py"]


@pytest.fixture(autouse=True)
def _no_demo_app():
    yield
    assert "app" not in sys.modules and not [m for m in sys.modules if m.startswith("app.")]


@pytest.fixture
def armed(tmp_path, monkeypatch):
    """The evidence record armed in tmp_path for one test: yields the record (its mmap)."""
    import faulthandler

    from django_celery_ops import evidence

    monkeypatch.setattr(evidence, "_stack_file", None)
    monkeypatch.setattr(evidence, "_record", None)
    evidence.arm(str(tmp_path))
    yield evidence._record
    # arm() enables faulthandler on its stack file; restore the default (stderr) afterwards
    faulthandler.enable(file=sys.__stderr__)
    evidence._stack_file.close()
