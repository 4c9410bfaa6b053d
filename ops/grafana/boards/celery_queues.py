"""Celery queues and tasks: backlog and drain time, consumers, workers, task outcomes, failures, timing."""

from boards.common import (
    above,
    alert_at,
    contract,
    dashboard,
    q,
    row,
    runbook_links,
    stat_panel,
    steps,
    t,
    table_panel,
    timeseries_panel,
    up_down_mappings,
    variable,
)

UID = "celery-queues"
JOB = 'job=~"$job"'
QUEUE = 'job=~"$job", queue_name=~"$queue"'
TASK = 'job=~"$job", name=~"$task"'
TASK_RATE = "suffix: tasks/s"
STATES = ("received", "started", "succeeded", "failed", "retried", "revoked", "rejected")


def build():
    """Return the dashboard builder."""
    c = contract(UID)
    alerts = [name for panel in c.values() for name in panel["alerts"]]
    board = dashboard(
        UID, "Celery queues and tasks",
        "Do queues drain, does every queue have consumers, are workers up and busy, which tasks fail, "
        "retry, hit time limits or wait too long?",
        [
            variable("job", "Exporter", "celery_queue_length", "job"),
            variable("queue", "Queue", "celery_queue_length", "queue_name", JOB),
            variable("task", "Task", "celery_task_received_total", "name", JOB),
        ],
    )
    board = runbook_links(board, alerts)
    return (
        board
        .with_row(row("Queues: look here first", 100))
        .with_panel(timeseries_panel(
            1, c[1]["title"],
            "Messages waiting in each queue. The backlog alert needs more than "
            f"{t.queue_backlog_min_messages} messages and a queue that grows or cannot drain within "
            f"{t.queue_drain_budget_seconds // 60} minutes, held for 10 minutes.",
            [q(f"queue_name:celery_queue_length:max{{{QUEUE}}}", "{{queue_name}}")],
            "short", thresholds=alert_at(t.queue_backlog_min_messages), alerts=c[1]["alerts"],
        ))
        .with_panel(timeseries_panel(
            2, c[2]["title"],
            "Queue length / tasks started per second: how long the queue takes to empty if nothing more "
            f"arrives. Above {t.queue_drain_budget_seconds // 60} minutes (line) the queue needs more "
            "workers; no value while the queue is empty, +Inf when nothing is consumed.",
            [q(f"queue_name:celery_queue_drain_seconds:estimate{{{QUEUE}}}", "{{queue_name}}")],
            "s", thresholds=alert_at(t.queue_drain_budget_seconds),
        ))
        .with_panel(stat_panel(
            3, c[3]["title"],
            "Workers consuming each queue. Red at 0: messages pile up and nothing will ever take them "
            "(the alert pages when the queue is not empty).",
            [q(f"max by (job, queue_name) (celery_active_consumer_count{{{QUEUE}}})", "{{queue_name}}")],
            "short", thresholds=steps("red", (1, "green")), alerts=c[3]["alerts"], width=12,
        ))
        .with_panel(timeseries_panel(
            9, c[9]["title"],
            "Mean seconds from publish to start of each queue's tasks over 5 minutes; the alert fires "
            f"above {t.queue_wait_seconds} s for 10 minutes.",
            [q(f"queue_name:celery_task_queue_wait_seconds:mean5m{{{QUEUE}}}", "{{queue_name}}")],
            "s", thresholds=alert_at(t.queue_wait_seconds), alerts=c[9]["alerts"],
        ))
        .with_row(row("Workers and broker", 101))
        .with_panel(stat_panel(
            4, c[4]["title"],
            "Each worker the exporter has seen: DOWN once its heartbeats stop (the alert fires after 3 "
            "minutes).",
            [q(f"max by (job, hostname) (celery_worker_up{{{JOB}}})", "{{hostname}}")],
            "none", thresholds=steps("red", (1, "green")), alerts=c[4]["alerts"], width=8,
            mappings=up_down_mappings(),
        ))
        .with_panel(timeseries_panel(
            5, c[5]["title"],
            "Active tasks / pool size of each worker. Held at "
            f"{t.celery_saturation_ratio:.0%} or more for 10 minutes the alert fires: new tasks wait in "
            "the queue; add processes or workers.",
            [q(f"hostname:celery_worker_saturation:ratio{{{JOB}}}", "{{hostname}}")],
            "percentunit", thresholds=alert_at(t.celery_saturation_ratio), alerts=c[5]["alerts"], width=8, max_=1,
        ))
        .with_panel(stat_panel(
            10, c[10]["title"],
            "Redis answers its exporter (redis_up) and the Celery exporter reaches the broker "
            "(celery_exporter_broker_up). DOWN: no task is queued or consumed.",
            [q(f'redis_up or celery_exporter_broker_up{{{JOB}}}', "{{__name__}} {{instance}}")],
            "none", thresholds=steps("red", (1, "green")), alerts=c[10]["alerts"], width=8,
            mappings=up_down_mappings(),
        ))
        .with_row(row("Tasks", 102))
        .with_panel(timeseries_panel(
            11, c[11]["title"],
            "Tasks started per second by task name: the consume rate the drain estimate divides by.",
            [q(f"sum by (job, name) (rate(celery_task_started_total{{{TASK}}}[5m]))", "{{name}}")],
            TASK_RATE,
        ))
        .with_panel(timeseries_panel(
            12, "Task outcomes by state",
            "Tasks per second in each state, over the selected tasks: received by workers, started, "
            "succeeded, failed, retried, revoked, rejected.",
            [
                q(f"sum(rate(celery_task_{state}_total{{{TASK}}}[$__rate_interval]))", state, ref=chr(ord("A") + i))
                for i, state in enumerate(STATES)
            ],
            TASK_RATE,
        ))
        .with_panel(timeseries_panel(
            6, c[6]["title"],
            "Failed / (failed + succeeded) of each task over 5 minutes; the alert fires above "
            f"{t.task_failure_ratio:.0%} for 10 minutes. Top exceptions says why.",
            [q(f"name:celery_task_failures:ratio_rate5m{{{TASK}}}", "{{name}}")],
            "percentunit", thresholds=alert_at(t.task_failure_ratio), alerts=c[6]["alerts"], max_=1,
        ))
        .with_panel(table_panel(
            13, "Top exceptions",
            "The ten task/exception pairs that failed most over the dashboard's time range.",
            [q(f"topk(10, sum by (name, exception) (increase(celery_task_failed_total{{{TASK}}}[$__range])))",
               instant=True)],
            "short", sort_by="Value",
        ))
        .with_panel(timeseries_panel(
            8, c[8]["title"],
            "Retries / all outcomes of each task over 5 minutes. Above "
            f"{t.task_retry_ratio:.0%} retries outnumber completions: backoff is not working "
            "(the alert fires after 10 minutes).",
            [q(f"name:celery_task_retries:ratio_rate5m{{{TASK}}}", "{{name}}")],
            "percentunit", thresholds=alert_at(t.task_retry_ratio), alerts=c[8]["alerts"], max_=1,
        ))
        .with_panel(timeseries_panel(
            7, c[7]["title"],
            "Soft and hard time-limit hits per task in the last 10 minutes; every hit is a task "
            "interrupted or killed mid-work, and fires the alert.",
            [q(f"sum by (job, name, limit) (increase(celery_task_time_limit_exceeded_total{{{TASK}}}[10m]))",
               "{{name}} {{limit}}")],
            "short", thresholds=alert_at(above(t.time_limit_hits_per_window)), alerts=c[7]["alerts"], bars=True,
        ))
        .with_row(row("Task timing", 103))
        .with_panel(timeseries_panel(
            14, "Task runtime by task",
            "Median and 95th percentile of each task's run time. Long tasks hold a pool process "
            "the whole time; compare with the time limits.",
            [
                q("histogram_quantile(0.5, sum by (name, le) "
                  f"(rate(celery_task_runtime_bucket{{{TASK}}}[$__rate_interval])))", "p50 {{name}}"),
                q("histogram_quantile(0.95, sum by (name, le) "
                  f"(rate(celery_task_runtime_bucket{{{TASK}}}[$__rate_interval])))", "p95 {{name}}", ref="B"),
            ],
            "s",
        ))
        .with_panel(timeseries_panel(
            15, "Queue wait by task",
            "Median and 95th percentile of the time from publish to start of each task; the line is "
            f"the queue-wait alert threshold ({t.queue_wait_seconds} s, on the mean per queue).",
            [
                q("histogram_quantile(0.5, sum by (name, le) "
                  f"(rate(celery_task_queue_wait_time_bucket{{{TASK}}}[$__rate_interval])))", "p50 {{name}}"),
                q("histogram_quantile(0.95, sum by (name, le) "
                  f"(rate(celery_task_queue_wait_time_bucket{{{TASK}}}[$__rate_interval])))", "p95 {{name}}",
                  ref="B"),
            ],
            "s", thresholds=alert_at(t.queue_wait_seconds),
        ))
    )
