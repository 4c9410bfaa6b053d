"""Gunicorn worker saturation: are there free workers, do requests wait, do workers die."""

from grafana_foundation_sdk.models import dashboard as dm

from boards.common import (
    above,
    alert_at,
    contract,
    dashboard,
    q,
    row,
    runbook_links,
    stat_panel,
    t,
    timeseries_panel,
    variable,
)

UID = "gunicorn-saturation"
SEL = 'job=~"$job", instance=~"$instance"'
LATENCY = "django_http_requests_latency_seconds_by_view_method_bucket"
RESPONSES = "django_http_responses_total_by_status_view_method_total"


def build():
    """Return the dashboard builder."""
    c = contract(UID)
    alerts = [name for panel in c.values() for name in panel["alerts"]]
    board = dashboard(
        UID, "Gunicorn worker saturation",
        "Is every gunicorn worker busy, do requests wait in the listen backlog, are workers killed? "
        "One line per worker pool (job) and host (instance).",
        [
            variable("job", "Worker pool", "gunicorn_workers_capacity", "job"),
            variable("instance", "Instance", "gunicorn_workers_capacity", "instance", 'job=~"$job"'),
        ],
    )
    board = runbook_links(board, alerts)
    return (
        board
        .with_row(row("Saturation: look here first", 100))
        .with_panel(timeseries_panel(
            1, c[1]["title"],
            "Requests in flight / worker slots (workers x threads). Near 100% every new request waits "
            f"for a free worker; the alert fires at {t.gunicorn_saturation_ratio:.0%} held for 5 minutes. "
            "Blocking views (sleep, CPU loops, synchronous HTTP) push it up without more traffic.",
            [q(f"instance:gunicorn_saturation:ratio{{{SEL}}}", "{{job}} {{instance}}")],
            "percentunit", thresholds=alert_at(t.gunicorn_saturation_ratio), alerts=c[1]["alerts"],
            width=8, max_=1,
        ))
        .with_panel(timeseries_panel(
            2, c[2]["title"],
            "Connections accepted by the kernel but not yet by a worker. Anything above "
            f"{t.listen_backlog_connections} means users are waiting right now (the alert pages after 3 "
            "minutes); the dotted limit is where the kernel starts refusing connections.",
            [
                q(f"max by (job, instance) (gunicorn_listen_backlog{{{SEL}}})", "{{job}} {{instance}}"),
                q(f"max by (job, instance) (gunicorn_listen_backlog_limit{{{SEL}}})",
                  "limit {{job}} {{instance}}", ref="B"),
            ],
            "short", thresholds=alert_at(above(t.listen_backlog_connections)), alerts=c[2]["alerts"], width=8,
        ))
        .with_panel(timeseries_panel(
            5, "Worker capacity vs busy",
            "Worker slots (capacity) against requests being served (busy). When busy meets capacity "
            "the tier is full: add workers or move slow work to Celery.",
            [
                q(f"max by (job, instance) (gunicorn_workers_capacity{{{SEL}}})", "capacity {{job}} {{instance}}"),
                q(f"sum by (job, instance) (gunicorn_requests_in_flight{{{SEL}}})", "busy {{job}} {{instance}}",
                  ref="B"),
            ],
            "short", width=8,
        ))
        .with_row(row("Timeouts and worker exits", 101))
        .with_panel(timeseries_panel(
            3, c[3]["title"],
            "Workers the master killed for WORKER TIMEOUT in the last 10 minutes: each one is a request "
            "that ran past the gunicorn timeout and a 502 for its user. Any kill fires the alert.",
            [q(f"sum by (job, instance) (increase(gunicorn_worker_timeouts_total{{{SEL}}}[10m]))",
               "{{job}} {{instance}}")],
            "short", thresholds=alert_at(above(t.worker_timeouts_per_window)), alerts=c[3]["alerts"],
            bars=True,
        ))
        .with_panel(timeseries_panel(
            4, c[4]["title"],
            "Worker exits in the last 15 minutes by reason. recycled (max_requests), timeout and "
            "shutdown are expected; signal (OOM killer) and crash are not, and fire the alert above "
            f"{t.worker_crashes_per_window}.",
            [q(f"sum by (job, instance, reason) (increase(gunicorn_worker_exits_total{{{SEL}}}[15m]))",
               "{{reason}} {{job}} {{instance}}")],
            "short", thresholds=alert_at(above(t.worker_crashes_per_window)), alerts=c[4]["alerts"],
            bars=True, stack=True,
        ).override_by_regexp("^(signal|crash) .*", [
            dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        ]))
        .with_row(row("Traffic per worker pool", 102))
        .with_panel(timeseries_panel(
            6, "Request rate by worker pool",
            "Responses per second of each pool. A flat rate while saturation climbs means requests got "
            "slower, not more numerous.",
            [q(f"sum by (job) (rate({RESPONSES}{{{SEL}}}[$__rate_interval]))", "{{job}}")],
            "reqps", width=8,
        ))
        .with_panel(timeseries_panel(
            7, "Latency by worker pool",
            f"p50, p95 and p99 of the request duration of each pool; the line is the slow-request "
            f"threshold ({t.slow_request_seconds:g} s).",
            [
                q(f"histogram_quantile({quantile}, sum by (job, le) (rate({LATENCY}{{{SEL}}}[$__rate_interval])))",
                  f"p{round(quantile * 100)} {{{{job}}}}", ref=ref)
                for quantile, ref in ((0.5, "A"), (0.95, "B"), (0.99, "C"))
            ],
            "s", thresholds=alert_at(t.slow_request_seconds), width=8,
        ))
        .with_panel(stat_panel(
            8, "Worker processes",
            "Configured worker processes of each pool and host; capacity is this times threads.",
            [q(f"max by (job, instance) (gunicorn_workers{{{SEL}}})", "{{job}} {{instance}}")],
            "short", width=8, height=8,
        ))
    )
