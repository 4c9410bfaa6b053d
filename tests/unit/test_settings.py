"""A wrong configuration fails at start-up with a message that names the setting."""
import os
import subprocess
import sys

import pytest

from tests.support.stack import ROOT


PRODUCTION = {"DJANGO_SECRET_KEY": "k" * 60 + "-Zq9", "DJANGO_ALLOWED_HOSTS": "ops.example.com",
              "JOBS_API_TOKENS": "ci:" + "ab" * 32}


def _check(**env):
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("DJANGO_", "JOBS_", "CELERY_", "DRILLS_", "OBS_", "PROMETHEUS_"))}
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
    ({**PRODUCTION, "DJANGO_DEBUG": "1"}, "DJANGO_DEBUG=1 is not allowed when DJANGO_ENV=production"),
    ({**PRODUCTION, "DJANGO_DEBUG": "yes", "DJANGO_ENV": "production"}, "DJANGO_DEBUG=1 is not allowed"),
    ({**PRODUCTION, "DRILLS_ENABLED": "1"}, "DRILLS_ENABLED=1 is not allowed when DJANGO_ENV=production"),
    ({"DJANGO_ENV": "drill"}, "must be production, development, test or drills"),
])
def test_bad_setting_fails_naming_it(env, message):
    result = _check(**env)
    assert result.returncode != 0
    assert message in result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    result = _check(**PRODUCTION, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))  # as every production tier has it
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_names_an_unset_or_unusable_multiproc_dir(tmp_path):
    result = _check(**PRODUCTION)
    assert "django_celery_ops.W001" in result.stderr and "PROMETHEUS_MULTIPROC_DIR" in result.stderr
    (tmp_path / "nope").write_text("")
    result = _check(**PRODUCTION, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "nope"))
    assert result.returncode != 0 and "django_celery_ops.E003" in result.stderr


def _settings(names: str, **env) -> list[str]:
    """The repr of each named setting, read by a fresh process from this environment alone."""
    code = f"from django.conf import settings as s; print(*(repr(getattr(s, n)) for n in {names.split()!r}))"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DRILLS_", "JOBS_"))}
    return subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT, text=True,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "app.settings", **env}, capture_output=True,
                          check=True).stdout.split()


def test_production_defaults_are_safe():
    out = _settings("DEBUG SECURE_SSL_REDIRECT SESSION_COOKIE_SECURE DRILLS_ENABLED ALLOWED_HOSTS",
                    DJANGO_SECRET_KEY="k" * 60, DJANGO_ALLOWED_HOSTS="a.example", JOBS_API_TOKENS="ci:" + "ab" * 32)
    assert out == ["False", "True", "True", "False", "['a.example']"]


def test_the_drills_environment_accepts_the_drills_and_is_relaxed_like_development():
    names = "DRILLS_ENABLED DEBUG SECURE_SSL_REDIRECT SESSION_COOKIE_SECURE SECURE_HSTS_SECONDS ALLOWED_HOSTS"
    drills = _settings(names, DJANGO_ENV="drills", DRILLS_ENABLED="1")  # no secret key, hosts or token needed
    assert drills == ["True", "False", "False", "False", "0", "['127.0.0.1',", "'localhost']"]
    assert drills == _settings(names, DJANGO_ENV="development", DRILLS_ENABLED="1")
