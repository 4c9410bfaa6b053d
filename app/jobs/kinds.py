"""The job kinds: for each, the Celery task that runs it, its queue and its result file.

The one table of what differs between kinds. Services publish a job by its task name
(`send_task`), so they never import the task module; tasks.py registers one task per row, and
the Celery routes (CELERY_TASK_ROUTES) are read from here. A plain module: settings may import it.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class JobKind:
    name: str  # Job.kind
    task_name: str  # the Celery task that runs it, sent by name
    queue: str  # where it is published (and retried: a retry goes back to the queue it came from)
    result_suffix: str  # the result file's extension


IMPORT = JobKind("import", task_name="jobs.process_import", queue="imports", result_suffix=".json")
EXPORT = JobKind("export", task_name="jobs.process_export", queue="exports", result_suffix=".csv")

KINDS: dict[str, JobKind] = {kind.name: kind for kind in (IMPORT, EXPORT)}
TASK_NAMES = frozenset(kind.task_name for kind in KINDS.values())
TASK_ROUTES = {kind.task_name: {"queue": kind.queue} for kind in KINDS.values()}
