"""Celery tasks: load the job by id, run the service, retry what may pass with backoff."""
import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from app.jobs import services
from app.jobs.errors import TransientJobError

log = logging.getLogger(__name__)

_OPTIONS = dict(
    bind=True,
    acks_late=True,  # a task is acknowledged only once it finished...
    reject_on_worker_lost=True,  # ...and goes back to the queue if its process died
    rate_limit=settings.JOBS_RATE_LIMIT,
    soft_time_limit=settings.JOBS_SOFT_TIME_LIMIT_SECONDS,
    time_limit=settings.JOBS_TIME_LIMIT_SECONDS,
    max_retries=settings.JOBS_MAX_RETRIES,
)


def _run(task, job_id: str) -> None:
    try:
        services.job_process(job_id)
    except TransientJobError as exc:
        retries = task.request.retries
        if retries >= task.max_retries:
            services.job_fail(job_id, f"gave up after {retries + 1} attempts: {exc}")
            return
        countdown = services.backoff_seconds(retries)
        services.job_mark_retrying(job_id, str(exc), countdown)
        log.warning("job %s: transient error (%s), retry %d in %.2f s", job_id, exc, retries + 1, countdown)
        raise task.retry(exc=exc, countdown=countdown) from exc
    except SoftTimeLimitExceeded:
        services.job_fail(job_id, f"time limit exceeded ({settings.JOBS_SOFT_TIME_LIMIT_SECONDS} s)")
        raise


@shared_task(name="jobs.process_import", **_OPTIONS)
def process_import(self, job_id: str) -> None:
    _run(self, job_id)


@shared_task(name="jobs.process_export", **_OPTIONS)
def process_export(self, job_id: str) -> None:
    _run(self, job_id)
