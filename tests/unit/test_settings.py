"""A wrong configuration fails at start-up with a message that names the setting."""
import os
import subprocess
import sys

import pytest

from tests.support.stack import ROOT


def _check(**env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JOBS_", "CELERY_"))}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True)


@pytest.mark.parametrize("env, message", [
    ({}, "DJANGO_SECRET_KEY is required"),
    ({"DJANGO_SECRET_KEY": "x" * 60}, "DJANGO_ALLOWED_HOSTS is required"),
    ({"DJANGO_ENV": "staging"}, "DJANGO_ENV='staging'"),
    ({"DJANGO_ENV": "test", "DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG='maybe' is not a boolean"),
    ({"DJANGO_ENV": "test", "JOBS_MAX_UPLOAD_BYTES": "ten"}, "JOBS_MAX_UPLOAD_BYTES='ten' is not an integer"),
    ({"DJANGO_ENV": "test", "JOBS_TIME_LIMIT_SECONDS": "10", "JOBS_SOFT_TIME_LIMIT_SECONDS": "20"},
     "JOBS_TIME_LIMIT_SECONDS must be greater"),
    ({"DJANGO_ENV": "test", "DATABASE_URL": "nosuchdb://x"}, "DATABASE_URL"),
])
def test_bad_setting_fails_naming_it(env, message):
    result = _check(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_pass_check_deploy():
    result = _check(DJANGO_SECRET_KEY="k" * 60 + "-Zq9", DJANGO_ALLOWED_HOSTS="ops.example.com")
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_defaults_are_safe():
    code = ("from django.conf import settings as s; "
            "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.DRILLS_ENABLED, s.ALLOWED_HOSTS)")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DRILLS_"))}
    out = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, text=True,
                         env={**clean, "DJANGO_SETTINGS_MODULE": "app.settings", "DJANGO_SECRET_KEY": "k" * 60,
                              "DJANGO_ALLOWED_HOSTS": "a.example"}, capture_output=True, check=True).stdout
    assert out.split() == ["False", "True", "True", "False", "['a.example']"]
