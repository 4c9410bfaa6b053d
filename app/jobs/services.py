"""Business logic of jobs: create, publish (outbox), recover, process, finish. Views and tasks stay thin.

Publishing is claimed with a compare-and-set on `enqueued_at` (set before the publish, undone
when it fails), so the request and the sweeper never both publish a job; only a publish whose
outcome the broker left ambiguous can produce a second message, and processing is idempotent
for that case. docs/jobs.md describes the lifecycle.
"""
import csv
import io
import logging
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import OperationalError, transaction
from django.db.models import Avg, Count, F, Min
from django.utils import timezone
from django_celery_ops import celery_queues

from app.celery import app as celery_app
from app.jobs import csvfiles, metrics
from app.jobs.errors import InvalidUpload, JobInputInvalid, TransientJobError, UploadTooLarge
from app.jobs.kinds import EXPORT, IMPORT, KINDS
from app.jobs.models import Job

log = logging.getLogger(__name__)
State = Job.State

LEASE_MARGIN_SECONDS = 10  # a running attempt ends (hard time limit) within time limit + this
UNACCEPTED_AFTER_SECONDS = 600  # a job still unaccepted this long after creation lost its request
OWNER_MAX_LENGTH = 64
STATUS_FIELDS = ("id", "kind", "state", "progress", "attempts", "error", "result_file", "owner")
_BATCH = 500


def _event(job: Job, state: str, **extra) -> None:
    job.history = [*job.history, {"state": state, "at": timezone.now().isoformat(), **extra}]


def _check_owner(owner) -> str:
    if not isinstance(owner, str) or len(owner) > OWNER_MAX_LENGTH:
        raise TypeError(f"owner must be a str of at most {OWNER_MAX_LENGTH} characters")
    return owner


# --- creation --------------------------------------------------------------------------------

def job_create_import(upload: UploadedFile | None, owner: str = "") -> Job:
    """Store the upload and its Job, check it cheaply, then publish on commit; raise InvalidUpload.

    The Job is stored before the check so that a rejected upload leaves a failed Job with its
    reason (its file is deleted); only uploads that cannot be stored at all (missing, too large)
    leave none. The job joins the outbox only once accepted (`accepted_at`), so the sweeper never
    publishes a job whose request is still checking it.
    """
    owner = _check_owner(owner)
    if upload is None:
        raise InvalidUpload("multipart field 'file' is required")
    if upload.size > settings.JOBS_MAX_UPLOAD_BYTES:
        raise UploadTooLarge(f"the file is {upload.size} bytes, the limit is {settings.JOBS_MAX_UPLOAD_BYTES}")
    name = os.path.basename(upload.name or "upload.csv")[:200]
    with transaction.atomic():
        job = Job(kind=Job.Kind.IMPORT, input_name=name, owner=owner)
        _event(job, State.QUEUED)
        job.input_file.save(f"{job.id}.csv", upload, save=False)
        job.save()
    try:
        with job.input_file.open("rb") as stream:
            lines = csvfiles.validate(stream, settings.JOBS_MAX_ROWS, settings.JOBS_MAX_LINES,
                                      settings.JOBS_MAX_COLUMNS)
    except InvalidUpload as exc:
        job_fail(job.pk, str(exc), discard_input=True)
        exc.job_id = job.pk
        raise
    except BaseException:
        job_fail(job.pk, "the request failed while checking the upload", discard_input=True)
        raise
    _accept(job, params={"rows": lines})
    return job


def job_create_export(params: dict, owner: str = "") -> Job:
    """Store an export Job and publish it on commit; raise InvalidUpload for a bad report."""
    owner = _check_owner(owner)
    if not isinstance(params, dict):
        raise InvalidUpload("the body must be a JSON object")
    report = params.get("report", "jobs")
    if not isinstance(report, str):
        raise InvalidUpload(f"field 'report' must be a string, not {type(report).__name__}")
    if report not in REPORTS:
        raise InvalidUpload(f"unknown report {report[:100]!r}; known: {', '.join(sorted(REPORTS))}")
    with transaction.atomic():
        job = Job(kind=Job.Kind.EXPORT, params={"report": report}, owner=owner)
        _event(job, State.QUEUED)
        job.save()
    _accept(job)
    return job


def _accept(job: Job, **fields) -> None:
    now = timezone.now()
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(accepted_at=now, state_changed_at=now, **fields)
        transaction.on_commit(lambda: job_enqueue(job.pk))
    job.accepted_at = job.state_changed_at = now
    for key, value in fields.items():
        setattr(job, key, value)


def job_get_status(job_id: str, owner: str | None) -> Job | None:
    """The job with only the fields a status poll needs; None if unknown, malformed or not the owner's."""
    try:
        pk = uuid.UUID(str(job_id))
    except (ValueError, TypeError, AttributeError):
        return None
    jobs = Job.objects.only(*STATUS_FIELDS).filter(pk=pk).order_by()
    if owner is not None:
        jobs = jobs.filter(owner=owner)
    return jobs.first()


# --- outbox ----------------------------------------------------------------------------------

def _publish(job: Job) -> bool:
    """Send the job's task by name to its kind's queue (app/jobs/kinds.py); False if the broker refused."""
    spec = job.spec
    try:
        celery_app.send_task(spec.task_name, args=[str(job.pk)], queue=spec.queue, retry=False)
    except Exception as exc:  # kombu raises several connection error types; all mean "maybe not sent"
        log.warning("job %s not published (broker unavailable: %s); the outbox sweeper will retry", job.pk, exc)
        return False
    return True


class _PublishPause:
    """After a failed request-time publish, skip request-time publishes for JOBS_PUBLISH_PAUSE_SECONDS.

    A publish to a broker that is down costs about 6 s (kombu's connection retries); paying that
    in every request would saturate the web tier during a broker outage. The sweeper publishes
    what the requests left, and does not pause (it stops at its first failure per sweep).
    """

    def __init__(self):
        self.until = 0.0

    def active(self) -> bool:
        return time.monotonic() < self.until

    def start(self) -> None:
        self.until = time.monotonic() + settings.JOBS_PUBLISH_PAUSE_SECONDS


publish_pause = _PublishPause()


def job_enqueue(job_id, reason: str = "") -> bool:
    """Claim the job's publish (compare-and-set on enqueued_at), then publish; False if not published.

    reason is empty for the request's own publish, else the sweeper's re-publish reason.
    """
    if not reason and publish_pause.active():
        log.info("job %s left to the outbox sweeper (a recent publish failed)", job_id)
        return False
    now = timezone.now()
    claimed = (Job.objects.filter(pk=job_id, enqueued_at__isnull=True, state=State.QUEUED, accepted_at__isnull=False)
               .update(enqueued_at=now, enqueue_attempts=F("enqueue_attempts") + 1))
    if not claimed:
        return True  # published already, taken by another publisher, or finished
    job = Job.objects.only("id", "kind").get(pk=job_id)
    if not _publish(job):
        Job.objects.filter(pk=job_id, enqueued_at=now).update(enqueued_at=None)  # give the claim back
        if not reason:
            publish_pause.start()
        return False
    if reason:
        metrics.republished(reason)
    return True


def jobs_enqueue_pending(min_age_seconds: float = 1.0) -> tuple[int, int]:
    """Publish accepted jobs not published yet (oldest first); return (sent, still pending)."""
    cutoff = timezone.now() - timedelta(seconds=min_age_seconds)
    pending = list(Job.objects.filter(enqueued_at__isnull=True, state=State.QUEUED, accepted_at__lte=cutoff)
                   .order_by("accepted_at").values_list("pk", flat=True)[:_BATCH])
    sent = 0
    for pk in pending:
        if not job_enqueue(pk, reason="outbox"):
            break  # the broker is down: stop, try again on the next sweep
        sent += 1
    return sent, len(pending) - sent


def _republish(job_id, field: str, old, states, reason: str) -> bool | None:
    """Re-claim a published job by compare-and-set on `field` and publish it again; None if not claimed."""
    now = timezone.now()
    claimed = (Job.objects.filter(pk=job_id, state__in=states, **{field: old})
               .update(**{field: now}, enqueue_attempts=F("enqueue_attempts") + 1))
    if not claimed:
        return None
    job = Job.objects.only("id", "kind").get(pk=job_id)
    if not _publish(job):
        Job.objects.filter(pk=job_id, **{field: now}).update(**{field: old})
        return False
    metrics.republished(reason)
    log.warning("job %s re-published (%s)", job_id, reason)
    return True


def empty_queues(queues: set[str]) -> set[str] | None:
    """The queues among these that hold no message now; None when the broker cannot tell."""
    try:
        with celery_app.connection_for_read() as connection:
            stats = celery_queues.measure(connection, sorted(queues))
    except Exception as exc:  # broker down: nothing could be re-published anyway
        log.warning("queue lengths unavailable (%s); lost messages are re-published later", exc)
        return None
    return {queue for queue, stat in stats.items() if stat.length == 0}


def _republish_overdue(jobs, field: str, state: str, reason: str, empty) -> int:
    """Re-publish overdue jobs whose queue is empty: a backlog may still hold their message."""
    rows = list(jobs.order_by(field).values_list("pk", field, "kind")[:_BATCH])
    if not rows:
        return 0
    drained = empty({KINDS[kind].queue for _pk, _at, kind in rows})
    if drained is None:
        return 0
    sent = 0
    for pk, old, kind in rows:
        if KINDS[kind].queue not in drained:
            continue  # workers are behind or down: copies would only pile up in the queue
        done = _republish(pk, field, old, [state], reason)
        if done is False:
            break
        sent += bool(done)
    return sent


def jobs_republish_lost(empty=empty_queues) -> int:
    """Re-publish queued jobs published long ago and never started (lost message); return how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOBS_REQUEUE_LOST_AFTER_SECONDS)
    jobs = Job.objects.filter(state=State.QUEUED, attempts=0, enqueued_at__lt=cutoff)
    return _republish_overdue(jobs, "enqueued_at", State.QUEUED, "lost_message", empty)


def jobs_republish_retry_due(empty=empty_queues) -> int:
    """Re-publish retrying jobs whose retry is overdue (its message was lost); return how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.JOBS_REQUEUE_LOST_AFTER_SECONDS)
    jobs = Job.objects.filter(state=State.RETRYING, retry_at__lt=cutoff)
    return _republish_overdue(jobs, "retry_at", State.RETRYING, "retry_due", empty)


def abandoned_after_seconds() -> int:
    """Seconds after its start that a running job is failed: Redis redelivers it after the visibility timeout."""
    visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"]
    return visibility + settings.JOBS_TIME_LIMIT_SECONDS + 300  # Redis restores unacked messages every ~100 s


def jobs_fail_abandoned() -> int:
    """Fail jobs that no delivery finished (running long past any redelivery, or never accepted)."""
    now = timezone.now()
    limit = abandoned_after_seconds()
    failed = 0
    running = Job.objects.filter(state=State.RUNNING, started_at__lt=now - timedelta(seconds=limit))
    for pk in running.values_list("pk", flat=True)[:_BATCH]:
        failed += job_fail(pk, f"abandoned: no result {limit} s after the attempt started "
                               "(the visibility timeout passed and no redelivery finished it)")
    unaccepted = Job.objects.filter(state=State.QUEUED, accepted_at__isnull=True,
                                    created_at__lt=now - timedelta(seconds=UNACCEPTED_AFTER_SECONDS))
    for pk in unaccepted.values_list("pk", flat=True)[:_BATCH]:
        failed += job_fail(pk, "abandoned: the request ended before the job was accepted", discard_input=True)
    return failed


def jobs_export_ages() -> None:
    """Set the sweeper's age gauges from the database (0 where no job is waiting)."""
    now = timezone.now()
    outbox = (Job.objects.filter(state=State.QUEUED, enqueued_at__isnull=True, accepted_at__isnull=False)
              .aggregate(oldest=Min("accepted_at"))["oldest"])
    metrics.set_outbox_age((now - outbox).total_seconds() if outbox else 0.0)
    oldest = dict(Job.objects.filter(state__in=metrics.OPEN_STATES, state_changed_at__isnull=False)
                  .values("state").annotate(oldest=Min("state_changed_at")).values_list("state", "oldest"))
    for state in metrics.OPEN_STATES:
        at = oldest.get(state)
        metrics.set_oldest_age(state, max(0.0, (now - at).total_seconds()) if at else 0.0)
    metrics.set_deadlines({state: getattr(settings, f"JOBS_DEADLINE_{state.upper()}_SECONDS")
                           for state in metrics.OPEN_STATES})


def jobs_sweep(min_age_seconds: float = 1.0) -> dict:
    """One sweep: publish the outbox, recover lost messages, fail the abandoned, export the ages."""
    sent, pending = jobs_enqueue_pending(min_age_seconds)
    stats = {"sent": sent, "pending": pending, "lost": jobs_republish_lost(),
             "retry_due": jobs_republish_retry_due(), "abandoned": jobs_fail_abandoned()}
    jobs_export_ages()
    return stats


# --- processing ------------------------------------------------------------------------------

def backoff_seconds(retries: int) -> float:
    """Exponential backoff with 'equal jitter': the n-th delay lies in [b*2^n/2, b*2^n].

    Half fixed, half random, so retries spread out (no thundering herd) and every delay is
    at least as long as the one before it.
    """
    base = settings.JOBS_RETRY_BACKOFF_SECONDS * (2 ** min(retries, 64))
    delay = min(settings.JOBS_RETRY_BACKOFF_MAX_SECONDS, base)
    return delay / 2 + random.uniform(0, delay / 2)


def _claim(job_id, task_id: str) -> Job | None:
    """Take the job for this delivery, or None when it is finished or running now elsewhere.

    A running job is taken again by a redelivery of the message that started it (its holder
    died: Celery requeues on a lost child, Redis after the visibility timeout), or by any
    message once the attempt's lease (hard time limit + margin) has run out.
    """
    now = timezone.now()
    lease = timedelta(seconds=settings.JOBS_TIME_LIMIT_SECONDS + LEASE_MARGIN_SECONDS)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in Job.FINAL_STATES:
            log.info("job %s is finished or unknown; nothing to do", job_id)
            return None  # done already: running it again must change nothing
        if job.state == State.RUNNING and not (task_id and task_id == job.task_id) \
                and job.started_at and job.started_at > now - lease:
            log.warning("job %s is running now (task %s); duplicate message %s skipped", job_id, job.task_id, task_id)
            return None
        if job.state == State.RUNNING:
            log.warning("job %s was left running by a dead worker (task %s); taking it again", job_id, job.task_id)
        job.state = State.RUNNING
        job.attempts += 1
        job.started_at = job.state_changed_at = now
        job.task_id = task_id
        job.retry_at = None
        job.error = ""
        _event(job, State.RUNNING, attempt=job.attempts)
        job.save()
    return job


def _progress(job_id, percent: int) -> None:
    Job.objects.filter(pk=job_id, state=State.RUNNING).update(progress=percent)


def _write_result(job: Job, suffix: str, chunks) -> str:
    """Write the result atomically under a name fixed by the job id; return its storage name."""
    name = f"results/{job.pk}{suffix}"
    path = Path(settings.MEDIA_ROOT) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{job.pk}.")
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
        os.replace(tmp, path)  # a second run overwrites with the same bytes: still one result
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return name


def _json_chunks(summary: dict):
    """The summary as compact JSON, one column at a time (no second copy of a wide summary)."""
    head = {k: v for k, v in summary.items() if k != "columns"}
    yield (csvfiles.dumps(head)[:-1] + ',"columns":[' if head else '{"columns":[').encode()
    for i, column in enumerate(summary["columns"]):
        yield (b"," if i else b"") + csvfiles.dumps(column).encode()
    yield b"]}"


def job_process(job_id, task_id: str = "") -> Job | None:
    """Run the job once; raise JobInputInvalid (failed for good) or TransientJobError (retry)."""
    job = _claim(job_id, task_id)
    if job is None:
        return None
    try:
        summary, chunks = _RUNS[job.kind](job)
        name = _write_result(job, job.spec.result_suffix, chunks)
    except InvalidUpload as exc:
        job_fail(job.pk, str(exc))
        raise JobInputInvalid(str(exc)) from None
    except TransientJobError as exc:
        exc.attempts = job.attempts
        raise
    except (OperationalError, OSError) as exc:
        error = TransientJobError(f"{type(exc).__name__}: {exc}")
        error.attempts = job.attempts
        raise error from exc
    stored = csvfiles.bounded(summary, settings.JOBS_SUMMARY_MAX_BYTES)
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job.pk)
        if job.state in Job.FINAL_STATES:
            return job
        job.state, job.progress, job.summary = State.SUCCEEDED, 100, stored
        job.result_file.name = name
        job.finished_at = job.state_changed_at = timezone.now()
        _event(job, State.SUCCEEDED)
        job.save()
        kind = job.kind
        transaction.on_commit(lambda: metrics.finished(kind, State.SUCCEEDED))
    return job


def _run_import(job: Job) -> tuple[dict, Iterable[bytes]]:
    """Summarise the uploaded CSV; the result is the summary as JSON."""
    summary = _summarize_upload(job)
    return summary, _json_chunks(summary)


def _run_export(job: Job) -> tuple[dict, Iterable[bytes]]:
    """Build the report the job names; the result is its CSV."""
    summary, data = REPORTS[job.params.get("report", "jobs")]()
    return summary, [data]


def _summarize_upload(job: Job) -> dict:
    if not job.input_file.name:
        raise InvalidUpload("the job has no input file")
    try:
        stream = job.input_file.open("rb")
    except FileNotFoundError as exc:
        # Shared storage (NFS, object stores) can lag behind the web host that wrote the file.
        raise TransientJobError(f"upload not readable yet: {exc.filename}") from exc
    with stream:
        return csvfiles.summarize(stream, settings.JOBS_MAX_ROWS, job.params.get("rows", 0),
                                  progress=lambda p: _progress(job.pk, p), max_lines=settings.JOBS_MAX_LINES,
                                  max_columns=settings.JOBS_MAX_COLUMNS)


def job_mark_retrying(job_id, reason: str, countdown: float) -> None:
    """Record the retry and its due time (the sweeper re-publishes it if that passes unnoticed)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in Job.FINAL_STATES:
            return
        now = timezone.now()
        job.state, job.error, job.state_changed_at = State.RETRYING, reason, now
        job.retry_at = now + timedelta(seconds=countdown)
        _event(job, State.RETRYING, error=reason, countdown=round(countdown, 3))
        job.save()


def job_fail(job_id, reason: str, discard_input: bool = False) -> bool:
    """Fail the job unless it is final already; return True if this call failed it."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state in Job.FINAL_STATES:
            return False
        if discard_input and job.input_file.name:
            job.input_file.delete(save=False)  # rejected input is not kept
        job.state, job.error = State.FAILED, reason[:2000]
        job.finished_at = job.state_changed_at = timezone.now()
        _event(job, State.FAILED, error=reason[:500])
        job.save()
        kind = job.kind
        transaction.on_commit(lambda: metrics.finished(kind, State.FAILED))
    return True


def job_rerun(job_id, reason: str = "re-run by an operator") -> bool:
    """Put a failed job back into the outbox as a fresh attempt; return True if this call did.

    Only failed jobs: a succeeded one has its result, a running or queued one is on its way.
    An import whose upload was rejected and removed cannot run again (the client must upload
    again); it raises JobInputInvalid. The job keeps its id, owner, history and attempt count;
    the sweeper or the publish on commit sends it (one publish, the outbox's compare-and-set).
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.state != State.FAILED:
            return False
        if job.kind == Job.Kind.IMPORT and not job.input_file.name:
            raise JobInputInvalid(f"job {job.pk}: its upload was rejected and removed; it cannot run again")
        now = timezone.now()
        job.state, job.error, job.progress = State.QUEUED, "", 0
        job.task_id, job.retry_at, job.started_at, job.finished_at = "", None, None, None
        job.enqueued_at, job.accepted_at, job.state_changed_at = None, now, now
        _event(job, State.QUEUED, rerun=reason[:200])
        job.save()
        pk = job.pk
        transaction.on_commit(lambda: job_enqueue(pk))
    log.info("job %s re-run: %s", job_id, reason)
    return True


RERUN_BATCH = _BATCH  # jobs one re-run call takes; the command says when more match


def jobs_failed_matching(job_ids=(), *, failed_since=None, error_contains: str = ""):
    """The failed jobs a re-run takes, oldest failure first: by id, failed since, error text."""
    jobs = Job.objects.filter(state=State.FAILED)
    if job_ids:
        jobs = jobs.filter(pk__in=[uuid.UUID(str(pk)) for pk in job_ids])
    if failed_since is not None:
        jobs = jobs.filter(finished_at__gte=failed_since)
    if error_contains:
        jobs = jobs.filter(error__contains=error_contains)
    return jobs.order_by("finished_at")


def jobs_rerun_failed(job_ids=(), *, failed_since=None, error_contains: str = "",
                      reason: str = "re-run by an operator") -> tuple[list, list]:
    """Re-run the given failed jobs, or every job failed since `failed_since` whose error contains
    `error_contains`; return (re-run ids, [(id, why not)] skipped)."""
    job_ids = [uuid.UUID(str(pk)) for pk in job_ids]  # ValueError on a malformed id
    jobs = jobs_failed_matching(job_ids, failed_since=failed_since, error_contains=error_contains)
    done, skipped = [], []
    for pk in jobs.values_list("pk", flat=True)[:RERUN_BATCH]:
        try:
            if job_rerun(pk, reason):
                done.append(pk)
            else:
                skipped.append((pk, "no longer failed"))
        except JobInputInvalid as exc:
            skipped.append((pk, str(exc)))
    seen = set(done) | {pk for pk, _ in skipped}
    skipped += [(pk, "unknown or not failed") for pk in job_ids if pk not in seen]
    return done, skipped


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
# How each kind of the kinds table runs (the rest of a kind, its task and queue, is in the table).
_RUNS = {IMPORT.name: _run_import, EXPORT.name: _run_export}
