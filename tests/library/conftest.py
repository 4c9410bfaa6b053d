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
