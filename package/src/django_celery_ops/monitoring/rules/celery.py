"""Celery: queues (backlog, consumers, wait), workers (up, saturation), tasks (failures, retries, limits)."""

from ..lib import Selectors, alert, groups, human_duration, record


def _recording(s):
    return [
        # Two exporters may watch one broker: max, not sum.
        record("queue_name:celery_queue_length:max", f"max {s.by('queue_name')} (celery_queue_length{s()})"),
        record("queue_name:celery_tasks_started:rate5m",
               f"sum {s.by('queue_name')} (rate(celery_task_started_total{s()}[5m]))"),
        # Seconds to empty the queue at the current consume rate; +Inf when nothing is consumed.
        record("queue_name:celery_queue_drain_seconds:estimate",
               f"queue_name:celery_queue_length:max{s()} / queue_name:celery_tasks_started:rate5m{s()}"),
        record("hostname:celery_worker_saturation:ratio", f"""
            sum {s.by('hostname')} (celery_worker_tasks_active{s()})
            /
            max {s.by('hostname')} (celery_worker_concurrency{s()})
        """),
        record("name:celery_tasks_succeeded:rate5m",
               f"sum {s.by('name')} (rate(celery_task_succeeded_total{s()}[5m]))"),
        record("name:celery_tasks_failed:rate5m", f"sum {s.by('name')} (rate(celery_task_failed_total{s()}[5m]))"),
        record("name:celery_tasks_retried:rate5m", f"sum {s.by('name')} (rate(celery_task_retried_total{s()}[5m]))"),
        # `or x * 0` counts an outcome without series as zero, so a task that never succeeded
        # (only failures, only retries) still gets a ratio.
        record("name:celery_task_failures:ratio_rate5m", f"""
            name:celery_tasks_failed:rate5m{s()}
            /
            (
              name:celery_tasks_failed:rate5m{s()}
              + (name:celery_tasks_succeeded:rate5m{s()} or name:celery_tasks_failed:rate5m{s()} * 0)
            )
        """),
        record("name:celery_task_retries:ratio_rate5m", f"""
            name:celery_tasks_retried:rate5m{s()}
            /
            (
              name:celery_tasks_retried:rate5m{s()}
              + (name:celery_tasks_succeeded:rate5m{s()} or name:celery_tasks_retried:rate5m{s()} * 0)
              + (name:celery_tasks_failed:rate5m{s()} or name:celery_tasks_retried:rate5m{s()} * 0)
            )
        """),
        record("queue_name:celery_task_queue_wait_seconds:mean5m", f"""
            sum {s.by('queue_name')} (rate(celery_task_queue_wait_time_sum{s()}[5m]))
            /
            sum {s.by('queue_name')} (rate(celery_task_queue_wait_time_count{s()}[5m]))
        """),
    ]


def rules(cfg):
    """Return the celery rule groups."""
    s, t = Selectors(cfg, "celery"), cfg["thresholds"]
    alerts = [
        # A burst of enqueues drains within minutes; a queue that keeps growing or cannot drain
        # within the budget needs more workers or less work. The value is the queue length.
        alert(
            cfg, "CeleryQueueBacklog",
            f"""
            queue_name:celery_queue_length:max{s()} > {t['queue_backlog_min_messages']}
            and
            (
              queue_name:celery_queue_drain_seconds:estimate{s()} > {t['queue_drain_budget_seconds']}
              or
              deriv(queue_name:celery_queue_length:max{s()}[15m]) > 0
            )
            """,
            severity="warning", component="celery",
            summary="Celery queue {{ $labels.queue_name }} has a growing backlog.",
            description="Queue {{ $labels.queue_name }} holds {{ $value | humanize }} messages and grows or "
            f"cannot drain within {t['queue_drain_budget_seconds'] // 60:g}m at the current consume rate.",
        ),
        # Critical: work piles up and nothing will ever take it.
        alert(
            cfg, "CeleryQueueNoConsumers",
            f"""
            queue_name:celery_queue_length:max{s()} > 0
            unless {s.on('queue_name')}
            max {s.by('queue_name')} (celery_active_consumer_count{s()}) > 0
            """,
            severity="critical", component="celery",
            summary="Celery queue {{ $labels.queue_name }} has no consumers.",
            description="Queue {{ $labels.queue_name }} holds {{ $value | humanize }} messages and no worker "
            "consumes it.",
        ),
        # A worker that vanished: killed (SIGKILL, OOM), its host lost, or wedged; it sent no goodbye
        # and the exporter reports 0 once its heartbeats stop. A worker stopped gracefully says
        # goodbye (worker-offline) and the exporter forgets it, so redeploys and a temporary extra
        # worker do not page. The value is always 0: the texts do not print it.
        alert(
            cfg, "CeleryWorkerDown",
            f"max {s.by('hostname')} (celery_worker_up{s()}) == 0",
            severity="warning", component="celery",
            summary="Celery worker {{ $labels.hostname }} vanished without saying goodbye.",
            description="Celery worker {{ $labels.hostname }} has sent no heartbeat for "
            f"{human_duration(cfg['for']['CeleryWorkerDown'])} and did not shut down cleanly (killed, out of "
            "memory, host lost or hung). Its unfinished tasks come back only after the broker's visibility timeout; "
            "jobs no redelivery finishes are failed and can be re-run (manage.py jobs_rerun).",
        ),
        alert(
            cfg, "CeleryWorkersSaturated",
            f"hostname:celery_worker_saturation:ratio{s()} >= {t['celery_saturation_ratio']}",
            severity="warning", component="celery",
            summary="Celery worker {{ $labels.hostname }} has all processes busy.",
            description="{{ $value | humanizePercentage }} of the pool of Celery worker {{ $labels.hostname }} "
            f"has been busy for {human_duration(cfg['for']['CeleryWorkersSaturated'])}; new tasks wait in the queue.",
        ),
        alert(
            cfg, "CeleryTaskFailureRateHigh",
            f"name:celery_task_failures:ratio_rate5m{s()} > {t['task_failure_ratio']}",
            severity="warning", component="celery",
            summary="Celery task {{ $labels.name }} fails often.",
            description="{{ $value | humanizePercentage }} of the runs of task {{ $labels.name }} failed "
            "over the last 5 minutes.",
        ),
        # No for: every hit is a task killed or interrupted mid-work.
        alert(
            cfg, "CeleryTaskTimeLimitExceeded",
            f"sum {s.by('name', 'limit')} (increase(celery_task_time_limit_exceeded_total{s()}[10m]))"
            f" > {t['time_limit_hits_per_window']}",
            severity="warning", component="celery",
            summary="Celery task {{ $labels.name }} hits its {{ $labels.limit }} time limit.",
            description='Task {{ $labels.name }} hit its {{ $labels.limit }} time limit '
            '{{ printf "%.0f" $value }} times in the last 10 minutes.',
        ),
        alert(
            cfg, "CeleryTaskRetryStorm",
            f"name:celery_task_retries:ratio_rate5m{s()} > {t['task_retry_ratio']}",
            severity="warning", component="celery",
            summary="Celery task {{ $labels.name }} retries more than it completes.",
            description="Retries are {{ $value | humanizePercentage }} of the outcomes of task "
            "{{ $labels.name }} over the last 5 minutes: backoff is not working.",
        ),
        alert(
            cfg, "CeleryTaskQueueWaitHigh",
            f"queue_name:celery_task_queue_wait_seconds:mean5m{s()} > {t['queue_wait_seconds']}",
            severity="warning", component="celery",
            summary="Tasks wait long in Celery queue {{ $labels.queue_name }}.",
            description="Tasks of queue {{ $labels.queue_name }} waited {{ $value | humanizeDuration }} on "
            "average between publish and start over the last 5 minutes.",
        ),
    ]
    return groups("celery", _recording(s), alerts)
