"""Business logic of jobs: create, enqueue (outbox), process, finish. Views and tasks stay thin."""
import csv
import io
import json
import logging
import os
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import OperationalError, transaction
from django.db.models import Avg, Count, F
from django.utils import timezone

from app.jobs import csvfiles
from app.jobs.errors import InvalidUpload, TransientJobError, UploadTooLarge
from app.jobs.models import Job

log = logging.getLogger(__name__)
State = Job.State


def _event(job: Job, state: str, **extra) -> None:
    job.history = [*job.history, {"state": state, "at": timezone.now().isoformat(), **extra}]


# --- creation --------------------------------------------------------------------------------

def job_create_import(upload: UploadedFile | None) -> Job:
    """Store the upload and its Job, then enqueue on commit; raise InvalidUpload for bad input.

    The Job is stored before validation so that a rejected upload leaves a failed Job with its
    reason; only uploads that cannot be stored at all (missing, too large) leave none.
    """
    if upload is None:
        raise InvalidUpload("multipart field 'file' is required")
    if upload.size > settings.JOBS_MAX_UPLOAD_BYTES:
        raise UploadTooLarge(f"the file is {upload.size} bytes, the limit is {settings.JOBS_MAX_UPLOAD_BYTES}")
    name = os.path.basename(upload.name or "upload.csv")[:200]
    with transaction.atomic():
        job = Job(kind=Job.Kind.IMPORT, input_name=name)
        _event(job, State.QUEUED)
        job.input_file.save(f"{job.id}.csv", upload, save=False)
        job.save()
    try:
        with job.input_file.open("rb") as stream:
            rows = csvfiles.validate(stream, settings.JOBS_MAX_ROWS)
    except InvalidUpload as exc:
        job_fail(job.pk, str(exc))
        exc.job_id = job.pk
        raise
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(params={"rows": rows})
        transaction.on_commit(lambda: job_enqueue(job.pk))
    return job


def job_create_export(params: dict) -> Job:
    """Store an export Job and enqueue it on commit."""
    report = params.get("report", "jobs")
    if report not in REPORTS:
        raise InvalidUpload(f"unknown report {report!r}; known: {', '.join(sorted(REPORTS))}")
    with transaction.atomic():
        job = Job(kind=Job.Kind.EXPORT, params={"report": report})
        _event(job, State.QUEUED)
        job.save()
        transaction.on_commit(lambda: job_enqueue(job.pk))
    return job


# --- outbox ----------------------------------------------------------------------------------

def job_enqueue(job_id) -> bool:
    """Publish the job's task; on a broker failure leave it for the sweeper. Return True if sent."""
    from app.jobs import tasks  # tasks import this module

    job = Job.objects.filter(pk=job_id, enqueued_at__isnull=True).exclude(state__in=Job.FINAL_STATES).first()
    if job is None:
        return True
    task = tasks.process_import if job.kind == Job.Kind.IMPORT else tasks.process_export
    Job.objects.filter(pk=job.pk).update(enqueue_attempts=F("enqueue_attempts") + 1)
    try:
        task.apply_async(args=[str(job.pk)], queue=job.queue, retry=False)
    except Exception as exc:  # kombu raises several connection error types; all mean "not sent"
        log.warning("job %s not enqueued (broker unavailable: %s); the outbox sweeper will retry", job.pk, exc)
        return False
    Job.objects.filter(pk=job.pk, enqueued_at__isnull=True).update(enqueued_at=timezone.now())
    return True


def jobs_enqueue_pending(min_age_seconds: float = 2.0) -> tuple[int, int]:
    """Enqueue every accepted job the broker has not taken yet; return (sent, still pending)."""
    cutoff = timezone.now() - timedelta(seconds=min_age_seconds)
    pending = list(Job.objects.filter(enqueued_at__isnull=True, state=State.QUEUED, created_at__lte=cutoff)
                   .order_by("created_at").values_list("pk", flat=True)[:500])
    sent = 0
    for pk in pending:
        if not job_enqueue(pk):
            break  # the broker is down: stop, try again on the next sweep
        sent += 1
    return sent, len(pending) - sent


def jobs_fail_abandoned() -> int:
    """Fail jobs left running past the hard time limit (their worker was killed); return how many."""
    limit = settings.JOBS_TIME_LIMIT_SECONDS + 60
    cutoff = timezone.now() - timedelta(seconds=limit)
    failed = 0
    for pk in Job.objects.filter(state=State.RUNNING, started_at__lt=cutoff).values_list("pk", flat=True):
        job_fail(pk, f"abandoned: no result {limit} s after the attempt started (worker killed or time limit)")
        failed += 1
    return failed


# --- processing ------------------------------------------------------------------------------

def backoff_seconds(retries: int) -> float:
    """Exponential backoff with 'equal jitter': the n-th delay lies in [b*2^n/2, b*2^n].

    Half fixed, half random, so retries spread out (no thundering herd) and every delay is
    at least as long as the one before it.
    """
    base = settings.JOBS_RETRY_BACKOFF_SECONDS * (2 ** retries)
    delay = min(settings.JOBS_RETRY_BACKOFF_MAX_SECONDS, base)
    return delay / 2 + random.uniform(0, delay / 2)


def _claim(job_id) -> Job | None:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in Job.FINAL_STATES:
            return None  # done already: running it again must change nothing
        job.state = State.RUNNING
        job.attempts += 1
        job.started_at = timezone.now()
        job.error = ""
        _event(job, State.RUNNING, attempt=job.attempts)
        job.save()
    return job


def _progress(job_id, percent: int) -> None:
    Job.objects.filter(pk=job_id, state=State.RUNNING).update(progress=percent)


def _write_result(job: Job, suffix: str, data: bytes) -> str:
    """Write the result atomically under a name fixed by the job id; return its storage name."""
    name = f"results/{job.pk}{suffix}"
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{job.pk}.")
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.replace(tmp, path)  # a second run overwrites with the same bytes: still one result
    return name


def job_process(job_id) -> Job | None:
    """Run the job once; raise TransientJobError when a later attempt may succeed."""
    job = _claim(job_id)
    if job is None:
        log.info("job %s is already finished; nothing to do", job_id)
        return None
    try:
        if job.kind == Job.Kind.IMPORT:
            summary = _process_import(job)
            name = _write_result(job, ".json", json.dumps(summary, indent=2).encode())
        else:
            summary, data = REPORTS[job.params.get("report", "jobs")]()
            name = _write_result(job, ".csv", data)
    except InvalidUpload as exc:
        job_fail(job.pk, str(exc))
        return None
    except (OperationalError, OSError) as exc:
        raise TransientJobError(f"{type(exc).__name__}: {exc}") from exc
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.state in Job.FINAL_STATES:
            return job
        job.state, job.progress, job.summary = State.SUCCEEDED, 100, summary
        job.result_file.name = name
        job.finished_at = timezone.now()
        _event(job, State.SUCCEEDED)
        job.save()
    return job


def _process_import(job: Job) -> dict:
    if not job.input_file.name:
        raise InvalidUpload("the job has no input file")
    try:
        stream = job.input_file.open("rb")
    except FileNotFoundError as exc:
        # Shared storage (NFS, object stores) can lag behind the web host that wrote the file.
        raise TransientJobError(f"upload not readable yet: {exc.filename}") from exc
    with stream:
        return csvfiles.summarize(stream, settings.JOBS_MAX_ROWS, job.params.get("rows", 0),
                                  progress=lambda p: _progress(job.pk, p))


def job_mark_retrying(job_id, reason: str, countdown: float) -> None:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in Job.FINAL_STATES:
            return
        job.state, job.error = State.RETRYING, reason
        _event(job, State.RETRYING, error=reason, countdown=round(countdown, 3))
        job.save()


def job_fail(job_id, reason: str) -> None:
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in Job.FINAL_STATES:
            return
        _finish_failed(job, reason)


def _finish_failed(job: Job, reason: str) -> None:
    job.state, job.error, job.finished_at = State.FAILED, reason[:2000], timezone.now()
    _event(job, State.FAILED, error=reason[:500])
    job.save()


# --- reports ---------------------------------------------------------------------------------

def build_jobs_report() -> tuple[dict, bytes]:
    """A CSV report of jobs by kind and state, with counts and mean run time."""
    duration = F("finished_at") - F("started_at")
    rows = (Job.objects.values("kind", "state").annotate(jobs=Count("pk"), mean_duration=Avg(duration))
            .order_by("kind", "state"))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["kind", "state", "jobs", "mean_duration_seconds"])
    total = 0
    for row in rows:
        mean = row["mean_duration"]
        writer.writerow([row["kind"], row["state"], row["jobs"],
                         f"{mean.total_seconds():.3f}" if mean is not None else ""])
        total += row["jobs"]
    return {"report": "jobs", "jobs": total, "generated_at": time.time()}, out.getvalue().encode()


REPORTS = {"jobs": build_jobs_report}
