"""task_revoked passes a task Context (not a Request) for a message discarded before it ran."""
from celery.app.task import Context

from django_celery_ops import celery_metrics


class _Task:
    name = "drills.ok"


def test_a_revoked_message_discarded_before_running_is_counted_with_its_task_name():
    labels = ("drills.ok", "host", "default")  # celery-exporter's hostname: w1@host -> host
    before = celery_metrics.REVOKED.labels(*labels)._value.get()
    context = Context(task="drills.ok", hostname="w1@host", delivery_info={"routing_key": "default"})
    celery_metrics._on_revoked(sender=_Task(), request=context)
    assert celery_metrics.REVOKED.labels(*labels)._value.get() == before + 1
