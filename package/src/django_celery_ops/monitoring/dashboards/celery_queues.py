"""Celery queues and tasks: backlog and drain time, consumers, workers, task outcomes, failures, timing."""

from .common import (
    above,
    alert_at,
    q,
    refs,
    row,
    stat_panel,
    steps,
    table_panel,
    timeseries_panel,
    up_down_mappings,
    variable,
)

NAME = "celery-queues"
COMPONENT = "celery"
QUEUE = 'queue_name=~"$queue"'
TASK = 'name=~"$task"'
TASK_RATE = "suffix: tasks/s"
STATES = ("received", "started", "succeeded", "failed", "retried", "revoked", "rejected")
TABLE_STATES = ("received", "succeeded", "failed", "retried", "revoked", "rejected")
QUANTILES = (0.5, 0.95, 0.99)


def _per_task_table(ctx, sel):
    """The per-task table: success rate, count of each state and runtime quantiles over the range."""
    by = ctx.by(COMPONENT, "name")

    def count(state):
        return f"sum {by} (increase(celery_task_{state}_total{{{sel}}}[$__range]))"

    # 0 failures, not "no data", for a task that never failed (its counter may not exist yet)
    failed = f"({count('failed')} or {count('succeeded')} * 0)"
    exprs = [f"{count('succeeded')} / ({count('succeeded')} + {failed})"]
    exprs += [count(state) for state in TABLE_STATES]
    exprs += [f"histogram_quantile({quantile}, sum {ctx.by(COMPONENT, 'name', 'le')} "
              f"(rate(celery_task_runtime_bucket{{{sel}}}[$__range])))" for quantile in QUANTILES]
    columns = ["success", *TABLE_STATES, *(f"p{round(quantile * 100)} runtime" for quantile in QUANTILES)]
    letters = [chr(ord("A") + i) for i in range(len(exprs))]
    return table_panel(
        ctx, 17, "Tasks over the time range",
        "One row per task over the dashboard's time range: the success rate (succeeded / (succeeded + "
        "failed)), how many were received, succeeded, failed, retried, revoked and rejected, and the "
        "p50/p95/p99 run time of successful runs (celery_task_runtime, as celery-exporter). Sort by any column.",
        [q(expr, ref=ref, instant=True) for expr, ref in zip(exprs, letters, strict=True)],
        "short", width=24, height=9, merge=True, sort_by="failed",
        rename={f"Value #{ref}": column for ref, column in zip(letters, columns, strict=True)},
        units={"success": "percentunit", **{column: "s" for column in columns if column.endswith("runtime")}},
    )


def build(ctx):
    """Return the dashboard builder."""
    c = ctx.panels[NAME]
    t = ctx.th
    job = ctx.sel(COMPONENT)
    queue = ctx.sel(COMPONENT, QUEUE)
    task = ctx.sel(COMPONENT, TASK)
    by = ctx.by
    board = ctx.dashboard(
        NAME, "Celery queues and tasks",
        "Do queues drain, does every queue have consumers, are workers up and busy, which tasks fail, "
        "retry, hit time limits or wait too long?",
        [
            *ctx.scope_variables("celery_queue_length", COMPONENT),
            variable("queue", "Queue", "celery_queue_length", "queue_name", job),
            variable("task", "Task", "celery_task_received_total", "name", job),
        ],
    )
    board = ctx.runbook_links(board, [name for panel in c.values() for name in panel["alerts"]])
    # `sent` is counted where the message is published: web processes too, under the django
    # selector; the $job variable (an exporter) does not apply to those series.
    sent = f"rate(celery_task_sent_total{{{task}}}[$__rate_interval])"
    if ctx.has("django"):
        web = ctx.scoped("django", TASK)
        sent = f"{sent} or rate(celery_task_sent_total{{{web}}}[$__rate_interval])"
    across = ctx.by_across()
    broker = [f"celery_exporter_broker_up{{{job}}}"]
    if ctx.has("redis"):
        broker.insert(0, f"redis_up{{{ctx.sel('redis')}}}")
    return (
        board
        .with_row(row("Queues: look here first", 100))
        .with_panel(timeseries_panel(
            ctx, 1, c[1]["title"],
            "Messages waiting in each queue. The backlog alert needs more than "
            f"{t('queue_backlog_min_messages')} messages and a queue that grows or cannot drain within "
            f"{t('queue_drain_budget_seconds') // 60} minutes, held for {ctx.held('CeleryQueueBacklog')}.",
            [q(f"queue_name:celery_queue_length:max{{{ctx.rec(COMPONENT, QUEUE)}}}", "{{queue_name}}")],
            "short", thresholds=alert_at(t("queue_backlog_min_messages")), alerts=c[1]["alerts"],
        ))
        .with_panel(timeseries_panel(
            ctx, 2, c[2]["title"],
            "Queue length / tasks started per second: how long the queue takes to empty if nothing more "
            f"arrives. Above {t('queue_drain_budget_seconds') // 60} minutes (line) the queue needs more "
            "workers; no value while the queue is empty, +Inf when nothing is consumed.",
            [q(f"queue_name:celery_queue_drain_seconds:estimate{{{ctx.rec(COMPONENT, QUEUE)}}}", "{{queue_name}}")],
            "s", thresholds=alert_at(t("queue_drain_budget_seconds")),
        ))
        .with_panel(stat_panel(
            ctx, 3, c[3]["title"],
            "Workers consuming each queue. Red at 0: messages pile up and nothing will ever take them "
            "(the alert pages when the queue is not empty).",
            [q(f"max {by(COMPONENT, 'queue_name')} (celery_active_consumer_count{{{queue}}})", "{{queue_name}}")],
            "short", thresholds=steps("red", (1, "green")), alerts=c[3]["alerts"], width=12,
        ))
        .with_panel(timeseries_panel(
            ctx, 9, c[9]["title"],
            "Mean seconds from publish to start of each queue's tasks over 5 minutes; the alert fires "
            f"above {t('queue_wait_seconds')} s for {ctx.held('CeleryTaskQueueWaitHigh')}.",
            [q(f"queue_name:celery_task_queue_wait_seconds:mean5m{{{ctx.rec(COMPONENT, QUEUE)}}}", "{{queue_name}}")],
            "s", thresholds=alert_at(t("queue_wait_seconds")), alerts=c[9]["alerts"],
        ))
        .with_row(row("Workers and broker", 101))
        .with_panel(stat_panel(
            ctx, 4, c[4]["title"],
            "Each worker the exporter has seen: DOWN once its heartbeats stop (the alert fires after "
            f"{ctx.held('CeleryWorkerDown')}).",
            [q(f"max {by(COMPONENT, 'hostname')} (celery_worker_up{{{job}}})", "{{hostname}}")],
            "none", thresholds=steps("red", (1, "green")), alerts=c[4]["alerts"], width=8,
            mappings=up_down_mappings(),
        ))
        .with_panel(timeseries_panel(
            ctx, 5, c[5]["title"],
            "Active tasks / pool size of each worker. Held at "
            f"{t('celery_saturation_ratio'):.0%} or more for {ctx.held('CeleryWorkersSaturated')} the alert "
            "fires: new tasks wait in the queue; add processes or workers.",
            [q(f"hostname:celery_worker_saturation:ratio{{{ctx.rec(COMPONENT)}}}", "{{hostname}}")],
            "percentunit", thresholds=alert_at(t("celery_saturation_ratio")), alerts=c[5]["alerts"], width=8,
            max_=1,
        ))
        .with_panel(stat_panel(
            ctx, 10, c[10]["title"],
            "Redis answers its exporter (redis_up) and the Celery exporter reaches the broker "
            "(celery_exporter_broker_up). DOWN: no task is queued or consumed.",
            [q(" or ".join(broker), "{{__name__}} {{instance}}")],
            "none", thresholds=steps("red", (1, "green")), alerts=c[10]["alerts"], width=8,
            mappings=up_down_mappings(),
        ))
        .with_row(row("Tasks", 102))
        .with_panel(timeseries_panel(
            ctx, 11, c[11]["title"],
            "Tasks started per second by task name: the consume rate the drain estimate divides by.",
            [q(f"sum {by(COMPONENT, 'name')} (rate(celery_task_started_total{{{task}}}[5m]))", "{{name}}")],
            TASK_RATE,
        ))
        .with_panel(timeseries_panel(
            ctx, 12, "Task outcomes by state",
            "Tasks per second in each state, over the selected tasks: received by workers, started, "
            "succeeded, failed, retried, revoked, rejected.",
            refs([(f"sum {by(COMPONENT)} (rate(celery_task_{state}_total{{{task}}}[$__rate_interval]))",
                   f"{state} {{{{job}}}}") for state in STATES]),
            TASK_RATE,
        ))
        .with_panel(timeseries_panel(
            ctx, 18, "Tasks sent vs received",
            "Task messages published per second, by every producer (workers and the outbox sweeper on "
            "the exporter's targets, web processes on the web tiers' targets), against messages workers "
            "received: sent above received for long means messages wait in the broker or are lost.",
            refs([(f"sum {across}({sent})", "sent"),
                  (f"sum {across}(rate(celery_task_received_total{{{task}}}[$__rate_interval]))", "received")]),
            TASK_RATE,
        ))
        .with_panel(timeseries_panel(
            ctx, 6, c[6]["title"],
            "Failed / (failed + succeeded) of each task over 5 minutes; the alert fires above "
            f"{t('task_failure_ratio'):.0%} for {ctx.held('CeleryTaskFailureRateHigh')}. Top exceptions "
            "says why.",
            [q(f"name:celery_task_failures:ratio_rate5m{{{ctx.rec(COMPONENT, TASK)}}}", "{{name}}")],
            "percentunit", thresholds=alert_at(t("task_failure_ratio")), alerts=c[6]["alerts"], max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 8, c[8]["title"],
            "Retries / all outcomes of each task over 5 minutes. Above "
            f"{t('task_retry_ratio'):.0%} retries outnumber completions: backoff is not working "
            f"(the alert fires after {ctx.held('CeleryTaskRetryStorm')}).",
            [q(f"name:celery_task_retries:ratio_rate5m{{{ctx.rec(COMPONENT, TASK)}}}", "{{name}}")],
            "percentunit", thresholds=alert_at(t("task_retry_ratio")), alerts=c[8]["alerts"], max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 7, c[7]["title"],
            "Soft and hard time-limit hits per task in the last 10 minutes; every hit is a task "
            "interrupted or killed mid-work, and fires the alert.",
            [q(f"sum {by(COMPONENT, 'name', 'limit')} (increase(celery_task_time_limit_exceeded_total{{{task}}}[10m]))",
               "{{name}} {{limit}}")],
            "short", thresholds=alert_at(above(t("time_limit_hits_per_window"))), alerts=c[7]["alerts"],
            bars=True,
        ))
        .with_row(row("Failures over the time range", 104))
        .with_panel(table_panel(
            ctx, 16, "Top failing tasks",
            "The ten tasks that failed most over the dashboard's time range, whatever the exception.",
            [q(f"topk(10, sum {by(COMPONENT, 'name')} (increase(celery_task_failed_total{{{task}}}[$__range])))",
               instant=True)],
            "short", sort_by="Value",
        ))
        .with_panel(table_panel(
            ctx, 13, "Top exceptions",
            "The ten task/exception pairs that failed most over the dashboard's time range.",
            [q(f"topk(10, sum {by(COMPONENT, 'name', 'exception')} "
               f"(increase(celery_task_failed_total{{{task}}}[$__range])))", instant=True)],
            "short", sort_by="Value",
        ))
        .with_panel(_per_task_table(ctx, task))
        .with_row(row("Task timing", 103))
        .with_panel(timeseries_panel(
            ctx, 14, "Task runtime by task",
            "Median, 95th and 99th percentile of each task's successful run time (celery_task_runtime, as "
            "celery-exporter: failed runs are in celery_task_execution_seconds). Long tasks hold a pool process "
            "the whole time; compare with the time limits.",
            refs([(f"histogram_quantile({quantile}, sum {by(COMPONENT, 'name', 'le')} "
                   f"(rate(celery_task_runtime_bucket{{{task}}}[$__rate_interval])))",
                   f"p{round(quantile * 100)} {{{{name}}}}") for quantile in QUANTILES]),
            "s",
        ))
        .with_panel(timeseries_panel(
            ctx, 15, "Queue wait by task",
            "Median and 95th percentile of the time from publish to start of each task; the line is "
            f"the queue-wait alert threshold ({t('queue_wait_seconds')} s, on the mean per queue).",
            refs([(f"histogram_quantile({quantile}, sum {by(COMPONENT, 'name', 'le')} "
                   f"(rate(celery_task_queue_wait_time_bucket{{{task}}}[$__rate_interval])))",
                   f"p{round(quantile * 100)} {{{{name}}}}") for quantile in (0.5, 0.95)]),
            "s", thresholds=alert_at(t("queue_wait_seconds")),
        ))
    )
