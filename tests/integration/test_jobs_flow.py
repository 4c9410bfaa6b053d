"""The jobs workload end to end: real gunicorn, a real Celery worker, a real Redis."""
import itertools
import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests

from tests.support import stack

FIXTURES = Path(__file__).parent.parent / "fixtures"
pytestmark = pytest.mark.integration


def _upload(web, name="weather.csv", data=None):
    data = data if data is not None else (FIXTURES / name).read_bytes()
    return requests.post(f"{web}/api/imports/", files={"file": (name, data, "text/csv")}, timeout=10)


def _wait_state(web, job_id, states, timeout=30):
    def done():
        body = requests.get(f"{web}/api/jobs/{job_id}/", timeout=5).json()
        return body if body["state"] in states else None
    return stack.wait_for(done, timeout, f"job {job_id} to reach {states}")


def _job_row(var_dir, job_id):
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM jobs_job WHERE id = ?", (job_id.replace("-", ""),)).fetchone()


def test_upload_goes_from_202_to_succeeded_with_the_right_summary(web, worker):
    response = _upload(web)
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["state"] == "queued"
    body = _wait_state(web, accepted["id"], {"succeeded", "failed"})
    assert body["state"] == "succeeded", body
    assert body["progress"] == 100 and body["attempts"] == 1 and body["error"] is None
    summary = requests.get(urljoin(web, body["result_url"]), timeout=5).json()
    assert summary["rows"] == 4
    temp = next(c for c in summary["columns"] if c["name"] == "temp")
    assert (temp["min"], temp["max"], temp["mean"]) == (2.0, 30.5, 13.5)


def test_export_produces_a_csv_report(web, worker):
    _wait_state(web, _upload(web).json()["id"], {"succeeded"})
    accepted = requests.post(f"{web}/api/exports/", json={"report": "jobs"}, timeout=10)
    assert accepted.status_code == 202
    body = _wait_state(web, accepted.json()["id"], {"succeeded", "failed"})
    assert body["state"] == "succeeded" and body["kind"] == "export"
    report = requests.get(urljoin(web, body["result_url"]), timeout=5).text.splitlines()
    assert report[0] == "kind,state,jobs,mean_duration_seconds"
    assert any(line.startswith("import,succeeded,1,") for line in report)


def test_the_same_job_run_twice_leaves_one_result(web, worker, app_env, var_dir):
    job_id = _upload(web).json()["id"]
    _wait_state(web, job_id, {"succeeded"})
    result = var_dir / "media" / "results" / f"{job_id}.json"
    before = (result.read_bytes(), result.stat().st_mtime_ns)
    # Deliver the task a second time, as a broker redelivery or a duplicate enqueue would.
    code = ("import django; django.setup(); from app import celery_app; from app.jobs.kinds import IMPORT; "
            f"celery_app.send_task(IMPORT.task_name, args=['{job_id}'], queue=IMPORT.queue)")
    subprocess.run([sys.executable, "-c", code], env={**app_env, "DJANGO_SETTINGS_MODULE": "app.settings"},
                   cwd=stack.ROOT, check=True)
    stack.wait_for(lambda: worker.log().count("succeeded in") >= 2,
                   30, "the second delivery to run")
    body = requests.get(f"{web}/api/jobs/{job_id}/", timeout=5).json()
    assert body["state"] == "succeeded" and body["attempts"] == 1
    assert (result.read_bytes(), result.stat().st_mtime_ns) == before
    assert sorted(p.name for p in result.parent.iterdir()) == [result.name]


def test_transient_error_is_retried_with_growing_delays(web, app_env, var_dir, procs):
    job_id = _upload(web).json()["id"]
    upload = var_dir / "media" / "uploads" / f"{job_id}.csv"
    hidden = upload.with_suffix(".hidden")
    shutil.move(upload, hidden)  # storage "not ready": the worker cannot read the upload yet
    procs.append(stack.start_celery_worker(app_env, var_dir))
    stack.wait_for(lambda: requests.get(f"{web}/api/jobs/{job_id}/", timeout=5).json()["attempts"] >= 4,
                   60, "four attempts")
    shutil.move(hidden, upload)
    body = _wait_state(web, job_id, {"succeeded", "failed"}, timeout=60)
    assert body["state"] == "succeeded", body
    history = json.loads(_job_row(var_dir, job_id)["history"])
    starts = [datetime.fromisoformat(e["at"]) for e in history if e["state"] == "running"]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert len(gaps) >= 3
    retrying = [e for e in history if e["state"] == "retrying"]
    assert retrying and "upload not readable yet" in retrying[0]["error"]
    countdowns = [e["countdown"] for e in retrying]
    # No retry starts before its delay, and the waits grow. Neighbouring gaps are not compared:
    # equal jitter lets delay n end where delay n+1 begins, and the worker's ETA timer adds up
    # to about 1 s of its own (a fresh machine measured gaps of 1.07 s then 1.00 s).
    assert all(gap >= countdown - 0.05 for gap, countdown in zip(gaps, countdowns)), (gaps, countdowns)
    assert gaps[-1] > gaps[0] and gaps[-1] >= 2 * min(gaps), gaps
    # equal jitter with a 0.5 s base: the n-th delay lies in [0.25 * 2^n, 0.5 * 2^n]
    for n, countdown in enumerate(countdowns):
        assert 0.25 * 2 ** n <= countdown <= 0.5 * 2 ** n, countdowns


def test_broker_outage_during_upload_loses_no_job(web, worker, redis, app_env, var_dir, procs):
    redis["proc"].stop()
    response = _upload(web)
    assert response.status_code == 202  # accepted although the broker is down
    job_id = response.json()["id"]
    ready = requests.get(f"{web}/readyz", timeout=10)  # still ready: uploads are accepted (app/health.py)
    assert ready.status_code == 200 and ready.json()["degraded"] == ["broker"]
    assert _job_row(var_dir, job_id)["enqueued_at"] is None
    # The broker comes back; the sweeper enqueues what it missed.
    new_redis, _ = stack.start_redis(var_dir, port=redis["port"])
    procs.append(new_redis)
    procs.append(stack.Proc("sweeper", [sys.executable, "manage.py", "jobs_sweep", "--loop", "--interval", "0.5"],
                            app_env, var_dir))
    body = _wait_state(web, job_id, {"succeeded", "failed"}, timeout=60)
    assert body["state"] == "succeeded", body
    assert requests.get(f"{web}/readyz", timeout=10).status_code == 200


@pytest.mark.parametrize("name, status, reason", [
    ("empty.csv", 400, "the file is empty"),
    ("header_only.csv", 400, "no data rows"),
    ("short_row.csv", 400, "row 3 has 2 fields, the header has 3"),
    ("image.png", 400, "not a CSV file"),
    ("bad_quote.csv", 400, "malformed CSV"),
])
def test_bad_input_over_http_is_a_4xx_with_reason_and_failed_job(web, var_dir, name, status, reason):
    response = _upload(web, name)
    assert response.status_code == status
    body = response.json()
    assert reason in body["error"] and "Traceback" not in response.text
    status_body = requests.get(f"{web}/api/jobs/{body['id']}/", timeout=5).json()
    assert status_body["state"] == "failed" and reason in status_body["error"]
    uploads = var_dir / "media" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []  # nothing kept from rejected input


def test_oversized_upload_and_unknown_job_are_clear_4xx(app_env, var_dir, procs):
    proc, web = stack.start_gunicorn({**app_env, "JOBS_MAX_UPLOAD_BYTES": "1000"}, var_dir)
    procs.append(proc)
    response = _upload(web, data=b"a,b\n" + b"1,2\n" * 400)
    assert response.status_code == 413 and "the limit is 1000" in response.json()["error"]
    missing = requests.get(f"{web}/api/jobs/00000000-0000-0000-0000-000000000000/", timeout=5)
    assert missing.status_code == 404 and "no job with id" in missing.json()["error"]
