"""Jobs services: owner, status polls, rejected input, type checks, outbox claims, recovery, metrics."""
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from app.jobs import services, tasks
from app.jobs.errors import InvalidUpload, JobInputInvalid, JobRetriesExhausted
from app.jobs.models import Job
from tests.support.csvdata import poison_csv

pytestmark = pytest.mark.django_db
FIXTURES = Path(__file__).parent.parent / "fixtures"
State = Job.State


def _upload(name="weather.csv", data=None):
    data = data if data is not None else (FIXTURES / name).read_bytes()
    return SimpleUploadedFile(name, data, content_type="text/csv")


def _finished(kind="import", state="failed") -> float:
    return REGISTRY.get_sample_value("jobs_finished_total", {"kind": kind, "state": state})


def _accepted_job(**fields) -> Job:
    now = timezone.now()
    job = Job.objects.create(kind=Job.Kind.EXPORT, params={"report": "jobs"}, accepted_at=now,
                             state_changed_at=now, **fields)
    return job


# --- creation and status -----------------------------------------------------------------------

def test_import_records_its_owner_and_joins_the_outbox_only_once_accepted(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        job = services.job_create_import(_upload(), owner="team-a")
    job.refresh_from_db()
    assert job.owner == "team-a" and job.accepted_at is not None and job.params == {"rows": 4}
    assert len(callbacks) == 1  # the publish, after commit


def test_status_poll_never_selects_summary_history_or_params():
    job = services.job_create_import(_upload(), owner="a")
    Job.objects.filter(pk=job.pk).update(summary={"big": "x" * 10_000}, history=[{"state": "x"}] * 100)
    with CaptureQueriesContext(connection) as queries:
        found = services.job_get_status(str(job.pk), owner="a")
        body = (found.kind, found.state, found.progress, found.attempts, found.error, bool(found.result_file))
    assert body[0] == "import"
    assert len(queries.captured_queries) == 1
    sql = queries.captured_queries[0]["sql"]
    for column in ("summary", "history", "params", "input_file"):
        assert f'"{column}"' not in sql, sql
    assert '"state"' in sql and '"owner"' in sql


def test_status_is_none_for_another_owner_unknown_or_malformed_ids_and_owner_none_sees_all():
    job = services.job_create_import(_upload(), owner="a")
    assert services.job_get_status(str(job.pk), owner="b") is None
    assert services.job_get_status(str(job.pk), owner="a").pk == job.pk
    assert services.job_get_status(str(job.pk), owner=None).pk == job.pk
    for bad in (str(uuid.uuid4()), "not-a-uuid", "", None, "x" * 5000, "\x00"):
        assert services.job_get_status(bad, owner=None) is None


def test_owner_must_be_a_short_str():
    with pytest.raises(TypeError):
        services.job_create_export({}, owner=["a"])
    with pytest.raises(TypeError):
        services.job_create_import(_upload(), owner="x" * 65)


@pytest.mark.parametrize("report", [[], {}, 1, None, True])
def test_export_report_of_the_wrong_type_is_a_clear_invalid_upload(report):
    with pytest.raises(InvalidUpload, match="field 'report' must be a string"):
        services.job_create_export({"report": report})
    assert Job.objects.count() == 0


def test_export_body_must_be_a_dict():
    with pytest.raises(InvalidUpload, match="JSON object"):
        services.job_create_export(["report"])


def test_a_file_rejected_at_request_time_is_removed_from_media(media, django_capture_on_commit_callbacks):
    before = _finished()
    with pytest.raises(InvalidUpload) as info, django_capture_on_commit_callbacks(execute=True):
        services.job_create_import(_upload("short_row.csv"))
    job = Job.objects.get(pk=info.value.job_id)
    assert job.state == State.FAILED and not job.input_file.name
    assert list((media / "uploads").iterdir()) == []
    assert _finished() == before + 1


def test_a_job_that_failed_in_the_task_keeps_its_input(media):
    job = services.job_create_import(_upload(data=poison_csv()))
    with pytest.raises(JobInputInvalid, match="fields, the header has 3"):
        services.job_process(job.pk)
    job.refresh_from_db()
    assert job.state == State.FAILED and (media / job.input_file.name).exists()


def test_stored_summary_is_bounded_and_the_result_has_every_column(settings, media):
    settings.JOBS_SUMMARY_MAX_BYTES = 4096
    header = ",".join(f"c{i}" for i in range(300))
    job = services.job_create_import(_upload(data=f"{header}\n{header.replace('c', '')}\n".encode()))
    job = services.job_process(job.pk)
    stored = Job.objects.get(pk=job.pk).summary
    assert stored["columns_truncated"]["total"] == 300 and len(stored["columns"]) < 300
    assert len(services.csvfiles.dumps(stored).encode()) <= 4096
    import json
    result = json.loads((media / job.result_file.name).read_text())
    assert len(result["columns"]) == 300 and b"\n" not in (media / job.result_file.name).read_bytes()


# --- outbox claims ---------------------------------------------------------------------------------

def test_each_kind_is_sent_by_its_task_name_to_its_queue(eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        imported = services.job_create_import(_upload())
        exported = services.job_create_export({})
    assert eager == [("jobs.process_import", "imports"), ("jobs.process_export", "exports")]
    for job, suffix in ((imported, ".json"), (exported, ".csv")):
        job.refresh_from_db()
        assert job.state == State.SUCCEEDED and job.result_file.name.endswith(suffix)


def test_services_send_tasks_by_name_without_importing_the_task_module():
    """A web process publishes a job with the task module never loaded (no services <-> tasks cycle)."""
    import os
    import subprocess
    import sys

    code = ("import django, sys; django.setup(); from app import celery_app; from app.jobs import services; "
            "from app.jobs.models import Job; sent = []; "
            "celery_app.send_task = lambda name, **options: sent.append((name, options['queue'])); "
            "assert services._publish(Job(kind='export')); print(sent, 'app.jobs.tasks' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "[('jobs.process_export', 'exports')] False", done.stderr[-2000:]


def test_a_failed_publish_gives_the_claim_back():
    job = _accepted_job()
    assert services.job_enqueue(job.pk) is False  # the test broker refuses connections
    job.refresh_from_db()
    assert job.enqueued_at is None and job.enqueue_attempts == 1


def test_a_job_claimed_by_another_publisher_is_not_published_again(eager):
    job = _accepted_job(enqueued_at=timezone.now())  # the request took the claim first
    assert services.job_enqueue(job.pk) is True
    job.refresh_from_db()
    assert job.state == State.QUEUED and job.attempts == 0 and job.enqueue_attempts == 0


def test_request_and_sweeper_publish_once(eager, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        job = services.job_create_export({})
    assert services.jobs_enqueue_pending(min_age_seconds=0) == (1, 0)  # the sweeper got there first
    for callback in callbacks:
        callback()  # then the request's own publish runs
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED and job.attempts == 1 and job.enqueue_attempts == 1


def test_the_sweeper_leaves_a_job_inside_its_request_alone():
    job = Job.objects.create(kind=Job.Kind.IMPORT)  # stored, not accepted yet: the request is checking it
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(seconds=60))
    assert services.jobs_enqueue_pending(min_age_seconds=0) == (0, 0)
    job.refresh_from_db()
    assert job.enqueued_at is None and job.enqueue_attempts == 0


def test_lost_queued_message_is_republished_once_and_completes(eager, settings):
    settings.JOBS_REQUEUE_LOST_AFTER_SECONDS = 30
    job = _accepted_job(enqueued_at=timezone.now() - timedelta(seconds=31))
    recent = _accepted_job(enqueued_at=timezone.now() - timedelta(seconds=5))
    before = REGISTRY.get_sample_value("jobs_republished_total", {"reason": "lost_message"}) or 0
    assert services.jobs_republish_lost(empty=lambda queues: queues) == 1
    job.refresh_from_db()
    recent.refresh_from_db()
    assert job.state == State.SUCCEEDED and job.attempts == 1
    assert recent.state == State.QUEUED
    assert REGISTRY.get_sample_value("jobs_republished_total", {"reason": "lost_message"}) == before + 1


def test_overdue_retry_is_republished(eager, settings):
    settings.JOBS_REQUEUE_LOST_AFTER_SECONDS = 30
    due = timezone.now() - timedelta(seconds=31)
    job = _accepted_job(state=State.RETRYING, enqueued_at=due, retry_at=due, attempts=1)
    waiting = _accepted_job(state=State.RETRYING, enqueued_at=due, retry_at=timezone.now(), attempts=1)
    assert services.jobs_republish_retry_due(empty=lambda queues: queues) == 1
    job.refresh_from_db()
    waiting.refresh_from_db()
    assert job.state == State.SUCCEEDED and job.attempts == 2
    assert waiting.state == State.RETRYING


def test_mark_retrying_stores_the_due_time():
    job = _accepted_job(state=State.RUNNING)
    services.job_mark_retrying(job.pk, "busy", countdown=40)
    job.refresh_from_db()
    assert job.state == State.RETRYING
    assert 38 < (job.retry_at - timezone.now()).total_seconds() <= 40


# --- claims of running jobs and abandonment --------------------------------------------------------

def test_a_duplicate_message_does_not_run_a_job_running_now():
    job = _accepted_job(state=State.RUNNING, started_at=timezone.now(), task_id="first", attempts=1)
    assert services.job_process(job.pk, task_id="second") is None
    job.refresh_from_db()
    assert job.state == State.RUNNING and job.attempts == 1 and job.task_id == "first"


def test_a_redelivered_message_takes_back_a_job_its_dead_worker_left_running():
    job = _accepted_job(state=State.RUNNING, started_at=timezone.now(), task_id="first", attempts=1)
    assert services.job_process(job.pk, task_id="first").state == State.SUCCEEDED
    assert Job.objects.get(pk=job.pk).attempts == 2


def test_any_message_takes_a_running_job_whose_lease_ran_out(settings):
    started = timezone.now() - timedelta(seconds=settings.JOBS_TIME_LIMIT_SECONDS + services.LEASE_MARGIN_SECONDS + 1)
    job = _accepted_job(state=State.RUNNING, started_at=started, task_id="first", attempts=1)
    assert services.job_process(job.pk, task_id="other").state == State.SUCCEEDED


def test_abandonment_waits_for_the_visibility_timeout(settings, django_capture_on_commit_callbacks):
    before = _finished("export")
    limit = services.abandoned_after_seconds()
    assert limit > settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] + settings.JOBS_TIME_LIMIT_SECONDS
    young = _accepted_job(state=State.RUNNING, started_at=timezone.now() - timedelta(seconds=400), attempts=1)
    old = _accepted_job(state=State.RUNNING, started_at=timezone.now() - timedelta(seconds=limit + 1), attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.jobs_fail_abandoned() == 1
    young.refresh_from_db()
    old.refresh_from_db()
    assert young.state == State.RUNNING  # 400 s: the old sweeper failed it at 390 s
    assert old.state == State.FAILED and "visibility timeout" in old.error
    assert _finished("export") == before + 1


def test_a_job_whose_request_died_before_acceptance_is_failed_later_and_its_input_removed(media):
    job = Job.objects.create(kind=Job.Kind.IMPORT)
    job.input_file.save(f"{job.pk}.csv", _upload(), save=True)
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(
        seconds=services.UNACCEPTED_AFTER_SECONDS + 1))
    assert services.jobs_fail_abandoned() == 1
    job.refresh_from_db()
    assert job.state == State.FAILED and list((media / "uploads").iterdir()) == []


# --- task outcomes and metrics ----------------------------------------------------------------------

def test_every_kind_and_final_state_is_exported_from_import():
    for kind in ("import", "export"):
        for state in ("succeeded", "failed"):
            assert _finished(kind, state) is not None


def test_a_job_is_counted_once_however_often_it_is_failed(django_capture_on_commit_callbacks):
    job = _accepted_job()
    before = _finished("export")
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_fail(job.pk, "first") is True
        assert services.job_fail(job.pk, "again") is False
    assert _finished("export") == before + 1


def test_bad_input_ends_the_task_in_failure_with_job_input_invalid():
    job = services.job_create_import(_upload(data=poison_csv()))
    result = tasks.process_import.apply(args=[str(job.pk)])
    assert result.state == "FAILURE" and type(result.result) is JobInputInvalid
    assert Job.objects.get(pk=job.pk).state == State.FAILED
    again = tasks.process_import.apply(args=[str(job.pk)])  # a redelivery changes nothing
    assert again.state == "SUCCESS" and Job.objects.get(pk=job.pk).attempts == 1


def test_exhausted_retries_end_the_task_in_failure_with_job_retries_exhausted(media, monkeypatch):
    job = services.job_create_import(_upload())
    (media / job.input_file.name).unlink()  # storage "not ready" for good
    monkeypatch.setattr(tasks.process_import, "max_retries", 0)
    result = tasks.process_import.apply(args=[str(job.pk)])
    assert result.state == "FAILURE" and type(result.result) is JobRetriesExhausted
    job.refresh_from_db()
    assert job.state == State.FAILED and "gave up after 1 attempts" in job.error


def test_sweep_exports_ages_and_deadlines(settings):
    from app.jobs import metrics

    settings.JOBS_DEADLINE_QUEUED_SECONDS = 123
    _accepted_job()
    Job.objects.filter(state=State.QUEUED).update(accepted_at=timezone.now() - timedelta(seconds=50),
                                                  state_changed_at=timezone.now() - timedelta(seconds=50))
    services.jobs_export_ages()
    gauges = metrics.sweeper()
    assert gauges.outbox_age._value.get() >= 50
    assert gauges.oldest_age.labels("queued")._value.get() >= 50
    assert gauges.oldest_age.labels("running")._value.get() == 0
    assert gauges.deadline.labels("queued")._value.get() == 123


def test_after_a_failed_publish_requests_leave_jobs_to_the_sweeper_for_a_while(settings):
    settings.JOBS_PUBLISH_PAUSE_SECONDS = 30
    first, second = _accepted_job(), _accepted_job()
    try:
        assert services.job_enqueue(first.pk) is False  # the broker refuses: ~6 s of retries
        started = timezone.now()
        assert services.job_enqueue(second.pk) is False
        assert (timezone.now() - started).total_seconds() < 0.5
        second.refresh_from_db()
        assert second.enqueue_attempts == 0 and second.enqueued_at is None  # still in the outbox
        assert services.job_enqueue(second.pk, reason="outbox") is False  # the sweeper still tries
        second.refresh_from_db()
        assert second.enqueue_attempts == 1
    finally:
        services.publish_pause.until = 0.0


def test_job_metrics_exist_at_zero_in_a_fresh_process_once_django_is_set_up(tmp_path):
    import subprocess
    import sys

    code = ("import django; django.setup(); from prometheus_client import REGISTRY; "
            "print(sorted(s.labels['kind'] + '/' + s.labels['state'] for m in REGISTRY.collect() "
            "if m.name == 'jobs_finished' for s in m.samples if s.name == 'jobs_finished_total')); "
            "print(sorted(m.name for m in REGISTRY.collect() if m.name.startswith('jobs_')))")
    env = {"PATH": "/usr/bin:/bin", "DJANGO_ENV": "development", "OPS_VAR_DIR": str(tmp_path),
           "DJANGO_SETTINGS_MODULE": "app.settings"}
    (tmp_path / "spool").mkdir()
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    children, families = done.stdout.strip().splitlines()
    assert children == "['export/failed', 'export/succeeded', 'import/failed', 'import/succeeded']"
    assert families == "['jobs_finished']"  # the sweeper's metrics exist only in the sweeper


def test_a_hard_time_limit_fails_the_job_its_killed_child_left_running():
    from celery.exceptions import TimeLimitExceeded

    job = _accepted_job(state=State.RUNNING, started_at=timezone.now(), task_id="t", attempts=1)
    other = _accepted_job(state=State.RUNNING, started_at=timezone.now(), task_id="u", attempts=1)
    tasks._on_hard_time_limit(sender=tasks.process_export, exception=TimeLimitExceeded(330), args=[str(job.pk)])
    tasks._on_hard_time_limit(sender=tasks.process_export, exception=ValueError("x"), args=[str(other.pk)])
    job.refresh_from_db()
    other.refresh_from_db()
    assert job.state == State.FAILED and "hard time limit exceeded" in job.error
    assert other.state == State.RUNNING  # other failures are the task's own business


def test_overdue_jobs_are_not_republished_into_a_queue_that_still_holds_messages(eager, settings):
    settings.JOBS_REQUEUE_LOST_AFTER_SECONDS = 30
    old = timezone.now() - timedelta(seconds=31)
    queued = _accepted_job(enqueued_at=old)
    retrying = _accepted_job(state=State.RETRYING, enqueued_at=old, retry_at=old, attempts=1)
    assert services.jobs_republish_lost(empty=lambda queues: set()) == 0  # workers behind or down
    assert services.jobs_republish_retry_due(empty=lambda queues: set()) == 0
    assert services.jobs_republish_lost(empty=lambda queues: None) == 0  # the broker cannot tell
    queued.refresh_from_db()
    retrying.refresh_from_db()
    assert queued.enqueue_attempts == 0 and retrying.enqueue_attempts == 0


def test_empty_queues_is_none_when_the_broker_is_down():
    assert services.empty_queues({"imports"}) is None
