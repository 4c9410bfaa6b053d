"""docker-compose.yml is valid and mounts only files that exist; it exposes nothing beyond loopback."""
import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.stack import ROOT

COMPOSE = ROOT / "docker-compose.yml"


def _services():
    return yaml.safe_load(COMPOSE.read_text())["services"]


def test_compose_file_matches_the_compose_spec():
    result = subprocess.run([str(Path(sys.executable).parent / "check-jsonschema"), "--builtin-schema",
                             "vendor.compose-spec", str(COMPOSE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_mounted_path_and_env_file_exists():
    missing = []
    for name, service in _services().items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")) and not (ROOT / source).exists():
                missing.append(f"{name}: {source}")
        for env_file in service.get("env_file", []):
            if not (ROOT / env_file).exists():
                missing.append(f"{name}: env_file {env_file}")
    assert not missing


def test_published_ports_bind_loopback_only():
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_compose_scrapes_the_same_jobs_as_the_local_stack():
    local = {p.stem for p in (ROOT / "ops/prometheus/targets").glob("*.yml")}
    docker = {p.stem for p in (ROOT / "ops/docker/targets").glob("*.yml")}
    assert local == docker


def test_secrets_come_from_the_environment_not_the_file():
    text = COMPOSE.read_text()
    for variable in ("DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD", "FLOWER_BASIC_AUTH"):
        assert f"${{{variable}:?" in text, f"{variable} must be required from the environment"


def test_compose_alertmanager_config_is_the_rendered_one(tmp_path):
    """ops/docker/alertmanager.yml is ops/alertmanager/alertmanager.yml with the compose inbox URL."""
    subprocess.run([sys.executable, str(ROOT / "ops/alertmanager/render.py"), "--out", str(tmp_path),
                    "--inbox-url", "http://inbox:9095"], check=True, capture_output=True)
    assert (ROOT / "ops/docker/alertmanager.yml").read_text() == (tmp_path / "alertmanager.yml").read_text(), \
        "regenerate: python ops/alertmanager/render.py --out ops/docker --inbox-url http://inbox:9095 " \
        "(then drop ops/docker/templates)"
