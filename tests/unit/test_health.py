"""/readyz names the failing dependency and nothing else; the detail goes to the server's log."""
import logging

import pytest
from django.db import connection
from django.test import Client

SECRET_HOST = "broker-7f3a.internal.example"  # what an exception text would leak


@pytest.fixture
def client():
    return Client(raise_request_exception=False)


@pytest.mark.django_db
def test_readyz_names_the_failing_broker_without_exception_text(client, settings, caplog):
    settings.CELERY_BROKER_URL = f"redis://user:hunter2@{SECRET_HOST}:1/0"
    with caplog.at_level(logging.WARNING, logger="app.health"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "failing": ["broker"],
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
    assert response.status_code == 503 and "database" in body["failing"] and body["checks"]["database"] == "unavailable"
    assert SECRET_HOST not in response.content.decode()
    assert any(SECRET_HOST in r.getMessage() for r in caplog.records if r.name == "app.health")
