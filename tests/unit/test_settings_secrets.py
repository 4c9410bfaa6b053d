"""The local stack's secrets (scripts/stack-secrets.sh, sourced by `make up`) are owner-only files,
made once; the API token's hash is what the web tiers accept; .env never reaches git."""
import hashlib
import os
import stat
import subprocess

import pytest

from app.api import tokens
from tests.support.stack import ROOT, VENV_BIN

FILES = ("secret_key", "flower_basic_auth", "api_token")
EXPORTED = ("DJANGO_SECRET_KEY", "FLOWER_BASIC_AUTH", "OPS_API_TOKEN", "JOBS_API_TOKENS")


def _source(var_dir, **env) -> dict:
    """Source the script in bash with the default umask; return the variables it exported."""
    clean = {k: v for k, v in os.environ.items() if k not in EXPORTED}
    script = "umask 022; source scripts/stack-secrets.sh; env -0"
    out = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, check=True,
                         env={**clean, "PATH": f"{VENV_BIN}:{clean.get('PATH', '/usr/bin:/bin')}",
                              "OPS_VAR_DIR": str(var_dir), **env}).stdout
    exported = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    return {k: exported.get(k) for k in EXPORTED}


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_each_secret_is_made_once_readable_by_the_owner_only(tmp_path):
    first = _source(tmp_path)
    assert {name: oct(_mode(tmp_path / name)) for name in FILES} == {name: "0o600" for name in FILES}
    token = (tmp_path / "api_token").read_text()
    assert len(token) >= 40 and token == first["OPS_API_TOKEN"]
    assert first["DJANGO_SECRET_KEY"] == (tmp_path / "secret_key").read_text().strip()
    assert first["FLOWER_BASIC_AUTH"].startswith("admin:") and len(first["FLOWER_BASIC_AUTH"]) > 20
    assert _source(tmp_path) == first  # a second `make up` keeps them


def test_the_exported_token_hash_is_what_the_web_tiers_accept(tmp_path):
    env = _source(tmp_path)
    digest = hashlib.sha256(env["OPS_API_TOKEN"].encode()).hexdigest()
    assert env["JOBS_API_TOKENS"] == f"local:{digest}"
    assert tokens.parse_tokens(env["JOBS_API_TOKENS"]) == (("local", tokens.digest(env["OPS_API_TOKEN"])),)


def test_a_secret_file_left_world_readable_by_an_older_checkout_is_tightened(tmp_path):
    old = tmp_path / "secret_key"
    old.write_text("kept-secret-value\n")
    old.chmod(0o644)
    assert _source(tmp_path)["DJANGO_SECRET_KEY"] == "kept-secret-value"
    assert _mode(old) == 0o600


def test_variables_already_set_win_and_no_file_is_written_for_them(tmp_path):
    env = _source(tmp_path, DJANGO_SECRET_KEY="from-env", OPS_API_TOKEN="plain-token")
    assert env["DJANGO_SECRET_KEY"] == "from-env" and not (tmp_path / "secret_key").exists()
    assert not (tmp_path / "api_token").exists()
    assert env["JOBS_API_TOKENS"] == "local:" + hashlib.sha256(b"plain-token").hexdigest()
    preset = "ops:" + "cd" * 32
    assert _source(tmp_path, JOBS_API_TOKENS=preset)["JOBS_API_TOKENS"] == preset


@pytest.mark.parametrize("path", [".env", "ops/docker/.env", ".env.production", "var/secret_key", "var/api_token"])
def test_secret_files_are_git_ignored(path):
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert result.returncode == 0, f"{path} is not ignored by .gitignore"


def test_make_up_sources_the_secrets_before_the_first_manage_py():
    lines = (ROOT / "scripts/up.sh").read_text().splitlines()
    sourced = lines.index("source scripts/stack-secrets.sh  # secret key, Flower login, API token: made once, 0600")
    first_django = next(n for n, line in enumerate(lines) if "manage.py" in line)
    assert sourced < first_django  # migrate loads the settings: production wants the token by then
