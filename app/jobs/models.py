import uuid

from django.db import models

from app.jobs.kinds import KINDS, JobKind


class Job(models.Model):
    """One import or export, from acceptance to its result file."""

    class Kind(models.TextChoices):  # the keys of app/jobs/kinds.KINDS
        IMPORT = "import"
        EXPORT = "export"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        RETRYING = "retrying"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    FINAL_STATES = (State.SUCCEEDED, State.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="percent done")
    attempts = models.PositiveIntegerField(default=0, help_text="times a worker started it")
    error = models.TextField(blank=True)
    params = models.JSONField(default=dict, blank=True)
    input_file = models.FileField(upload_to="uploads/", blank=True)
    input_name = models.CharField(max_length=255, blank=True, help_text="file name as uploaded")
    result_file = models.FileField(upload_to="results/", blank=True)
    summary = models.JSONField(null=True, blank=True)
    history = models.JSONField(default=list, blank=True, help_text="state changes with their times")
    owner = models.CharField(max_length=64, blank=True, default="", db_index=True,
                             help_text="name of the API token that created it")
    # Null while the request still checks the upload: the outbox takes only accepted jobs.
    accepted_at = models.DateTimeField(null=True, blank=True)
    # Outbox: the publish claim (compare-and-set), null until a publisher took it; set before
    # the publish and given back when it fails. The sweeper publishes what is still null.
    enqueued_at = models.DateTimeField(null=True, blank=True, db_index=True)
    enqueue_attempts = models.PositiveIntegerField(default=0, help_text="publishes tried")
    task_id = models.CharField(max_length=64, blank=True, default="", help_text="message of the current attempt")
    retry_at = models.DateTimeField(null=True, blank=True, help_text="when the pending retry is due")
    state_changed_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                            help_text="when the job entered its current state")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["enqueued_at", "state"], name="jobs_outbox_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} ({self.state})"

    @property
    def spec(self) -> JobKind:
        """The row of the kinds table (app/jobs/kinds.py): task name, queue, result suffix."""
        return KINDS[self.kind]
