"""Job errors: what the client did wrong, what may pass if tried again, and why a job failed for good."""
from django.core.exceptions import SuspiciousOperation


class InvalidUpload(SuspiciousOperation):
    """The upload can never be processed; the message is the reason shown to the client."""

    status = 400


class UploadTooLarge(InvalidUpload):
    status = 413


class TransientJobError(Exception):
    """A failure that may pass on a later attempt (storage not ready, database busy)."""

    attempts = 0  # the job's attempts so far, set by services.job_process


class JobFailed(Exception):
    """The job failed for good: its task ends in FAILURE with a subclass naming the reason.

    celery_task_failed_total{exception=...} carries the subclass name, so a job that can never
    succeed shows on the task-failure dashboards and alerts. The job row is already final.
    """


class JobInputInvalid(JobFailed):
    """The task found the input unusable (bad rows, limits): no retry can help."""


class JobRetriesExhausted(JobFailed):
    """A transient error outlasted every retry."""


class JobTimeLimitExceeded(JobFailed):
    """The attempt ran past the soft time limit."""
