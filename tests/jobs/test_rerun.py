"""Re-running a failed job (runbooks CeleryWorkerDown, JobsStuck): the service, the command, the admin action."""
import io

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from app.jobs import services
from app.jobs.errors import JobInputInvalid
from app.jobs.models import Job

pytestmark = pytest.mark.django_db
State = Job.State


def _failed_export(error="abandoned: no result 3910 s after the attempt started") -> Job:
    now = timezone.now()
    return Job.objects.create(kind=Job.Kind.EXPORT, params={"report": "jobs"}, accepted_at=now, state=State.FAILED,
                              error=error, finished_at=now, state_changed_at=now, enqueued_at=now, attempts=1,
                              task_id="old-task", started_at=now)


def test_a_failed_job_runs_again_and_succeeds_keeping_its_id_and_history(eager, django_capture_on_commit_callbacks):
    job = _failed_export()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.job_rerun(job.pk, "worker1 was SIGKILLed") is True
    job.refresh_from_db()
    assert job.state == State.SUCCEEDED and job.error == "" and job.attempts == 2
    assert eager == [("jobs.process_export", "exports")]  # published once
    states = [e["state"] for e in job.history]
    assert states[-3:] == [State.QUEUED, State.RUNNING, State.SUCCEEDED]
    assert job.history[-3]["rerun"] == "worker1 was SIGKILLed"


def test_a_rerun_joins_the_outbox_so_the_sweeper_publishes_it_when_the_broker_refused(monkeypatch):
    job = _failed_export()
    monkeypatch.setattr(services, "_publish", lambda job: False)  # broker down at re-run time
    services.job_rerun(job.pk)
    job.refresh_from_db()
    assert job.state == State.QUEUED and job.enqueued_at is None and job.accepted_at is not None


@pytest.mark.parametrize("state", [State.SUCCEEDED, State.RUNNING, State.QUEUED, State.RETRYING])
def test_only_failed_jobs_are_rerun(state):
    job = _failed_export()
    Job.objects.filter(pk=job.pk).update(state=state)
    assert services.job_rerun(job.pk) is False
    assert Job.objects.get(pk=job.pk).state == state


def test_an_import_whose_rejected_upload_was_removed_cannot_run_again():
    job = Job.objects.create(kind=Job.Kind.IMPORT, state=State.FAILED, error="not a CSV")
    with pytest.raises(JobInputInvalid, match="upload again|cannot run again"):
        services.job_rerun(job.pk)
    done, skipped = services.jobs_rerun_failed([job.pk])
    assert done == [] and skipped[0][0] == job.pk


def test_an_import_that_failed_in_its_task_keeps_its_input_and_can_run_again(media):
    job = Job.objects.create(kind=Job.Kind.IMPORT, state=State.FAILED, error="TransientJobError: gave up")
    job.input_file.save(f"{job.pk}.csv", SimpleUploadedFile("a.csv", b"a,b\n1,2\n"), save=True)
    assert services.job_rerun(job.pk) is True


def test_command_reruns_named_jobs_and_fails_on_one_it_could_not():
    failed, done = _failed_export(), _failed_export()
    Job.objects.filter(pk=done.pk).update(state=State.SUCCEEDED)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 named job"):
        call_command("jobs_rerun", str(failed.pk), str(done.pk), stdout=out, stderr=err)
    assert f"re-run {failed.pk}" in out.getvalue() and f"not re-run {done.pk}" in err.getvalue()
    assert Job.objects.get(pk=failed.pk).state == State.QUEUED


def test_command_selects_recent_failures_by_error_and_dry_run_changes_nothing():
    abandoned, invalid = _failed_export(), _failed_export(error="the header has 3 fields")
    out = io.StringIO()
    call_command("jobs_rerun", "--failed-within", "3600", "--error-contains", "abandoned", "--dry-run", stdout=out)
    assert f"would re-run {abandoned.pk}" in out.getvalue() and str(invalid.pk) not in out.getvalue()
    assert Job.objects.get(pk=abandoned.pk).state == State.FAILED
    call_command("jobs_rerun", "--failed-within", "3600", "--error-contains", "abandoned", stdout=io.StringIO())
    assert Job.objects.get(pk=abandoned.pk).state == State.QUEUED
    assert Job.objects.get(pk=invalid.pk).state == State.FAILED


def test_command_says_when_more_failed_jobs_match_than_one_run_takes(monkeypatch):
    monkeypatch.setattr(services, "RERUN_BATCH", 2)
    jobs = [_failed_export() for _ in range(3)]
    out = io.StringIO()
    call_command("jobs_rerun", "--failed-within", "3600", "--dry-run", stdout=out)
    assert out.getvalue().count("would re-run") == 2 and "1 more failed job(s) match" in out.getvalue()
    out = io.StringIO()
    call_command("jobs_rerun", "--failed-within", "3600", stdout=out)
    assert "2 job(s) queued again" in out.getvalue() and "1 more failed job(s) match" in out.getvalue()
    assert sorted(Job.objects.get(pk=j.pk).state for j in jobs).count(Job.State.FAILED) == 1
    out = io.StringIO()
    call_command("jobs_rerun", "--failed-within", "3600", stdout=out)  # the second run takes the rest
    assert "1 job(s) queued again" in out.getvalue() and "more failed" not in out.getvalue()


def test_command_refuses_no_selection_and_malformed_ids():
    with pytest.raises(CommandError, match="job ids"):
        call_command("jobs_rerun")
    with pytest.raises(CommandError, match="not a job id"):
        call_command("jobs_rerun", "nope")


def test_admin_action_reruns_the_selected_failed_jobs(client):
    admin = User.objects.create_superuser("oncall", "oncall@example.org", "pw-for-tests-only")
    client.force_login(admin)
    failed, other = _failed_export(), _failed_export()
    response = client.post("/admin/jobs/job/", {"action": "rerun_failed", "_selected_action": [str(failed.pk)]},
                           follow=True)
    assert response.status_code == 200
    assert "1 job(s) queued again" in response.content.decode()
    assert Job.objects.get(pk=failed.pk).state == State.QUEUED
    assert Job.objects.get(pk=other.pk).state == State.FAILED
