"""The kinds table is the one place a job kind's task, queue and result are named."""
from django.conf import settings

from app.jobs import services, tasks
from app.jobs.kinds import KINDS, TASK_NAMES, TASK_ROUTES
from app.jobs.models import Job


def test_every_model_kind_has_one_row_and_one_way_to_run():
    assert set(KINDS) == set(Job.Kind.values) == set(services._RUNS)


def test_every_row_names_a_registered_task_and_a_configured_queue():
    queues = {queue.name for queue in settings.CELERY_TASK_QUEUES}
    for kind in KINDS.values():
        assert tasks.process_import.app.tasks[kind.task_name].name == kind.task_name
        assert kind.queue in queues
    assert {tasks.process_import.name, tasks.process_export.name} == TASK_NAMES


def test_celery_routes_follow_the_table():
    assert {name: route for name, route in settings.CELERY_TASK_ROUTES.items() if name in TASK_NAMES} == TASK_ROUTES


def test_job_spec_is_its_kinds_row():
    assert Job(kind=Job.Kind.IMPORT).spec.queue == "imports"
    assert Job(kind=Job.Kind.EXPORT).spec.result_suffix == ".csv"
