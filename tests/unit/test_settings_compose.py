"""The app containers of docker-compose.yml start with the settings they are given: the production
checks (DEBUG, drills, API tokens) pass with the compose environment, and fail naming the setting
the operator must put in .env."""
import os
import re
import subprocess
import sys

import pytest
import yaml

from tests.support.stack import ROOT

_VAR = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")
APP_SERVICES = ("migrate", "web", "web-asgi", "worker", "sweeper", "exporter", "flower")


def _compose_env(service: str, dotenv: dict) -> dict:
    """The environment compose gives a service's container, with `dotenv` as the .env file."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    spec = compose["services"][service]
    env = {}
    for env_file in spec.get("env_file", []):
        for line in (ROOT / env_file).read_text().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                env[key.strip()] = value.strip()

    def substitute(match):
        name, op, arg = match.groups()
        if dotenv.get(name):
            return dotenv[name]
        if op == "?":
            raise LookupError(f"compose refuses to start: {arg}")
        return arg if op == "-" else ""

    for key, value in (spec.get("environment") or {}).items():
        env[key] = _VAR.sub(substitute, str(value))
    return env


def _check(env: dict, tmp_path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "JOBS_", "CELERY_", "DRILLS_"))}
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, capture_output=True, text=True,
                          env={**clean, **env, "OPS_VAR_DIR": str(tmp_path)})


DOTENV = {"DJANGO_SECRET_KEY": "s" * 50 + "-Zq9x", "POSTGRES_PASSWORD": "pw", "FLOWER_BASIC_AUTH": "a:b",
          "JOBS_API_TOKENS": "ci:" + "ab" * 32}


@pytest.mark.parametrize("service", APP_SERVICES)
def test_each_app_service_passes_the_production_checks(service, tmp_path):
    env = _compose_env(service, DOTENV)
    assert env["DJANGO_ENV"] == "production"
    result = _check(env, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]


def test_without_an_api_token_the_app_refuses_to_start_naming_it(tmp_path):
    env = _compose_env("web", {**DOTENV, "JOBS_API_TOKENS": ""})
    result = _check(env, tmp_path)
    assert result.returncode != 0 and "JOBS_API_TOKENS is required" in result.stderr


def test_the_explicit_opt_out_is_passed_through(tmp_path):
    env = _compose_env("web", {**DOTENV, "JOBS_API_TOKENS": "", "JOBS_API_AUTH": "off"})
    assert _check(env, tmp_path).returncode == 0


@pytest.mark.parametrize("setting", ["DJANGO_DEBUG", "DRILLS_ENABLED"])
def test_debug_or_drills_in_the_compose_environment_refuse_to_start(setting, tmp_path):
    env = {**_compose_env("web", DOTENV), setting: "1"}
    result = _check(env, tmp_path)
    assert result.returncode != 0 and f"{setting}=1 is not allowed when DJANGO_ENV=production" in result.stderr


def test_compose_requires_the_secrets_from_dotenv():
    with pytest.raises(LookupError, match="DJANGO_SECRET_KEY"):
        _compose_env("web", {k: v for k, v in DOTENV.items() if k != "DJANGO_SECRET_KEY"})
