"""The jobs API through Django's test client; no broker is reachable here (outbox path)."""
import uuid
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings

from app.jobs import services
from app.jobs.models import Job

FIXTURES = Path(__file__).parent.parent / "fixtures"
pytestmark = pytest.mark.django_db(transaction=True)


def _upload(client, name, content=None):
    data = content if content is not None else (FIXTURES / name).read_bytes()
    return client.post("/api/imports/", {"file": SimpleUploadedFile(name, data, content_type="text/csv")})


def test_upload_answers_202_and_keeps_the_job_when_the_broker_is_down(client):
    response = _upload(client, "weather.csv")
    assert response.status_code == 202
    body = response.json()
    assert body["state"] == "queued" and body["status_url"].endswith(f"/api/jobs/{body['id']}/")
    job = Job.objects.get(pk=body["id"])
    assert job.enqueued_at is None and job.enqueue_attempts == 1  # left for the sweeper
    assert Path(job.input_file.path).read_bytes() == (FIXTURES / "weather.csv").read_bytes()
    assert job.params == {"rows": 4}


@pytest.mark.parametrize("name, status, reason", [
    ("empty.csv", 400, "the file is empty"),
    ("header_only.csv", 400, "no data rows"),
    ("short_row.csv", 400, "row 3 has 2 fields"),
    ("image.png", 400, "not a CSV file"),
])
def test_bad_upload_is_a_4xx_with_the_reason_and_a_failed_job(client, name, status, reason):
    response = _upload(client, name)
    assert response.status_code == status
    body = response.json()
    assert reason in body["error"]
    job = Job.objects.get(pk=body["id"])
    assert job.state == Job.State.FAILED and reason in job.error
    status_body = client.get(f"/api/jobs/{job.pk}/").json()
    assert status_body["state"] == "failed" and reason in status_body["error"]


def test_missing_file_field_is_a_400(client):
    response = client.post("/api/imports/", {"other": "x"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"].startswith("multipart field 'file' is required")
    assert (body["field"], body["rule"]) == ("file", "required")
    assert Job.objects.count() == 0


@override_settings(JOBS_MAX_UPLOAD_BYTES=10)
def test_upload_over_the_size_limit_is_a_413(client):
    response = _upload(client, "weather.csv")
    assert response.status_code == 413
    assert "the limit is 10" in response.json()["error"]


def test_unknown_and_malformed_job_ids_are_404(client):
    for job_id in (uuid.uuid4(), "not-a-uuid"):
        response = client.get(f"/api/jobs/{job_id}/")
        assert response.status_code == 404
        assert response.json()["error"] == f"no job with id {job_id}"


def test_unknown_url_is_json_404_without_traceback(client):
    response = client.get("/nope")
    assert response.status_code == 404 and response.json()["error"] == "not found"


def test_export_accepts_a_known_report_and_rejects_others(client):
    assert client.post("/api/exports/", "{}", content_type="application/json").status_code == 202
    bad = client.post("/api/exports/", '{"report": "x"}', content_type="application/json")
    assert bad.status_code == 400 and "unknown report 'x'" in bad.json()["error"]
    assert client.post("/api/exports/", "[1]", content_type="application/json").status_code == 400


def test_process_then_process_again_leaves_one_result(client):
    job_id = _upload(client, "weather.csv").json()["id"]
    first = services.job_process(job_id)
    assert first.state == Job.State.SUCCEEDED and first.summary["rows"] == 4
    result = Path(first.result_file.path)
    before = (result.read_bytes(), result.stat().st_mtime_ns)
    assert services.job_process(job_id) is None  # finished: nothing runs again
    job = Job.objects.get(pk=job_id)
    assert job.attempts == 1
    assert (result.read_bytes(), result.stat().st_mtime_ns) == before
    assert sorted(p.name for p in result.parent.iterdir()) == [result.name]
    detail = client.get(f"/api/jobs/{job_id}/").json()
    assert detail["state"] == "succeeded" and detail["progress"] == 100
    download = client.get(detail["result_url"].removeprefix("http://testserver"))
    assert download.status_code == 200 and b'"rows":4' in b"".join(download.streaming_content).replace(b" ", b"")


def test_missing_upload_file_is_transient(client):
    job_id = _upload(client, "weather.csv").json()["id"]
    Path(Job.objects.get(pk=job_id).input_file.path).unlink()
    with pytest.raises(services.TransientJobError, match="upload not readable yet"):
        services.job_process(job_id)


@override_settings(JOBS_RETRY_BACKOFF_SECONDS=1.0, JOBS_RETRY_BACKOFF_MAX_SECONDS=1000)
def test_backoff_grows_with_each_retry_and_is_jittered():
    for retries in range(6):
        samples = [services.backoff_seconds(retries) for _ in range(200)]
        assert 2 ** retries / 2 <= min(samples) and max(samples) <= 2 ** retries
        assert len(set(samples)) > 100  # jittered, not a fixed schedule


@override_settings(JOBS_RETRY_BACKOFF_SECONDS=1.0, JOBS_RETRY_BACKOFF_MAX_SECONDS=5)
def test_backoff_is_capped():
    assert max(services.backoff_seconds(10) for _ in range(100)) <= 5


def test_healthz_needs_nothing_and_readyz_names_the_broker(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    response = client.get("/readyz")
    assert response.status_code == 200  # degraded, still ready: uploads go to the outbox (app/health.py)
    body = response.json()
    assert body["degraded"] == ["broker"] and body["failing"] == [] and body["checks"]["database"] == "ok"


def test_drills_are_404_unless_enabled(client):
    assert client.get("/drills/slow-view/?seconds=0").status_code == 404
    with override_settings(DRILLS_ENABLED=True):
        assert client.get("/drills/slow-view/?seconds=0").status_code == 200
