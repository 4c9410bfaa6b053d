"""/readyz: 503 only without the database; a broker outage degrades it (uploads still go to the outbox).

It names the failing dependency and nothing else; the detail goes to the server's log.
"""
import logging

import pytest
from django.db import connection
from django.test import Client

SECRET_HOST = "broker-7f3a.internal.example"  # what an exception text would leak


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


@pytest.mark.django_db
def test_readyz_stays_ready_but_names_a_broker_outage_without_exception_text(client, settings, caplog):
    """A load balancer on /readyz must keep the web tier in while Redis is down: uploads are accepted."""
    settings.CELERY_BROKER_URL = f"redis://user:hunter2@{SECRET_HOST}:1/0"
    with caplog.at_level(logging.WARNING, logger="app.health"):
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "degraded", "failing": [], "degraded": ["broker"],
                               "checks": {"database": "ok", "broker": "unavailable"}}
    assert SECRET_HOST not in response.content.decode() and "Error" not in response.content.decode()
    [record] = [r for r in caplog.records if r.name == "app.health"]
    assert "broker unavailable" in record.getMessage() and "Error" in record.getMessage()  # the class, for the operator


@pytest.mark.django_db
def test_readyz_names_the_failing_database(client, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise RuntimeError(f"could not connect to server at {SECRET_HOST}")

    monkeypatch.setattr(connection, "cursor", refuse)
    with caplog.at_level(logging.WARNING, logger="app.health"):
        response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 503 and body["failing"] == ["database"] and body["checks"]["database"] == "unavailable"
    assert body["status"] == "unavailable"
    assert SECRET_HOST not in response.content.decode()
    assert any(SECRET_HOST in r.getMessage() for r in caplog.records if r.name == "app.health")


@pytest.mark.django_db
def test_healthz_touches_no_dependency(client, settings, monkeypatch):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    monkeypatch.setattr(connection, "cursor", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("db down")))
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_which_probe_goes_where_is_documented_and_followed():
    """docs/oncall.md: /healthz restarts processes (liveness), /readyz routes traffic (readiness)."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    probes = (root / "docs" / "oncall.md").read_text().split("## Probes", 1)[1].split("\n## ", 1)[0]
    healthz = next(line for line in probes.splitlines() if line.startswith("| `/healthz`"))
    readyz = next(line for line in probes.splitlines() if line.startswith("| `/readyz`"))
    assert "livenessProbe" in healthz and "restart" in healthz
    assert "readinessProbe" in readyz and "load balancer" in readyz and "degraded" in readyz
    services = yaml.safe_load((root / "docker-compose.yml").read_text())["services"]
    for name in ("web", "web-asgi"):  # compose restarts unhealthy containers: liveness, never readiness
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "/healthz" in check and "/readyz" not in check, name
