"""Celery tasks: load the job by id, run the service, retry what may pass with backoff.

One task per job kind, named by the kinds table (app/jobs/kinds.py); services send them by
that name and never import this module.

A job that fails for good ends its task in FAILURE with an exception naming the reason
(app/jobs/errors.py), so celery_task_failed_total{exception=...} counts it.
"""
import logging

from celery import shared_task, signals
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from django.conf import settings

from app.jobs import services
from app.jobs.errors import JobFailed, JobRetriesExhausted, JobTimeLimitExceeded, TransientJobError
from app.jobs.kinds import EXPORT, IMPORT, TASK_NAMES

log = logging.getLogger(__name__)

_OPTIONS = dict(
    bind=True,
    acks_late=True,  # a task is acknowledged only once it finished...
    reject_on_worker_lost=True,  # ...and goes back to the queue if its process died
    rate_limit=settings.JOBS_RATE_LIMIT or None,
    soft_time_limit=settings.JOBS_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.JOBS_TIME_LIMIT_SECONDS,
    max_retries=settings.JOBS_MAX_RETRIES,
    throws=(JobFailed,),  # expected failures: logged without a traceback, still FAILURE
)


def _run(task, job_id: str) -> None:
    try:
        services.job_process(job_id, task.request.id or "")
    except TransientJobError as exc:
        # Attempts count redeliveries and re-publishes too, which start again at retries=0.
        retries = max(task.request.retries, exc.attempts - 1)
        if retries >= task.max_retries:
            reason = f"gave up after {retries + 1} attempts: {exc}"
            services.job_fail(job_id, reason)
            raise JobRetriesExhausted(reason) from exc
        countdown = services.backoff_seconds(retries)
        services.job_mark_retrying(job_id, str(exc), countdown)
        log.warning("job %s: transient error (%s), retry %d in %.2f s", job_id, exc, retries + 1, countdown)
        raise task.retry(exc=exc, countdown=countdown) from exc
    except SoftTimeLimitExceeded as exc:
        reason = f"time limit exceeded ({settings.JOBS_SOFT_TIME_LIMIT_SECONDS} s)"
        services.job_fail(job_id, reason)
        raise JobTimeLimitExceeded(reason) from exc


@shared_task(name=IMPORT.task_name, **_OPTIONS)
def process_import(self, job_id: str) -> None:
    _run(self, job_id)


@shared_task(name=EXPORT.task_name, **_OPTIONS)
def process_export(self, job_id: str) -> None:
    _run(self, job_id)


@signals.task_failure.connect(weak=False, dispatch_uid="jobs.hard_time_limit")
def _on_hard_time_limit(sender=None, exception=None, args=None, **_):
    """The worker's main process killed the child at the hard limit: fail the job it left running."""
    if isinstance(exception, TimeLimitExceeded) and getattr(sender, "name", "") in TASK_NAMES and args:
        services.job_fail(args[0], f"hard time limit exceeded ({settings.JOBS_TIME_LIMIT_SECONDS} s)")
