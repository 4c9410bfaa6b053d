"""Gunicorn worker saturation: are there free workers, do requests wait, do workers die."""

from grafana_foundation_sdk.models import dashboard as dm

from .common import above, alert_at, q, refs, row, stat_panel, timeseries_panel, variable

NAME = "gunicorn-saturation"
COMPONENT = "gunicorn"
LATENCY = "django_http_requests_latency_seconds_by_view_method_bucket"
RESPONSES = "django_http_responses_total_by_status_view_method_total"
INSTANCE = 'instance=~"$instance"'


def build(ctx):
    """Return the dashboard builder."""
    c = ctx.panels[NAME]
    t = ctx.th
    slow_s = ctx.slo("latency_seconds")
    sel = ctx.sel(COMPONENT, INSTANCE)
    web = ctx.sel("django", INSTANCE)  # the request families, recorded by the Django middleware
    by = ctx.by
    board = ctx.dashboard(
        NAME, "Gunicorn worker saturation",
        "Is every gunicorn worker busy, do requests wait in the listen backlog, are workers killed? "
        "One line per worker pool (job) and host (instance).",
        [
            *ctx.scope_variables("gunicorn_workers_capacity", COMPONENT),
            variable("instance", "Instance", "gunicorn_workers_capacity", "instance", ctx.sel(COMPONENT)),
        ],
    )
    board = ctx.runbook_links(board, [name for panel in c.values() for name in panel["alerts"]])
    return (
        board
        .with_row(row("Saturation: look here first", 100))
        .with_panel(timeseries_panel(
            ctx, 1, c[1]["title"],
            "Requests in flight / worker slots (workers x threads). Near 100% every new request waits "
            f"for a free worker; the alert fires at {t('gunicorn_saturation_ratio'):.0%} held for "
            f"{ctx.held('GunicornWorkersSaturated')}. Blocking views (sleep, CPU loops, synchronous HTTP) "
            "push it up without more traffic.",
            [q(f"instance:gunicorn_saturation:ratio{{{ctx.rec(COMPONENT, INSTANCE)}}}", "{{job}} {{instance}}")],
            "percentunit", thresholds=alert_at(t("gunicorn_saturation_ratio")), alerts=c[1]["alerts"],
            width=8, max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 2, c[2]["title"],
            "Connections accepted by the kernel but not yet by a worker. Anything above "
            f"{t('listen_backlog_connections')} means users are waiting right now (the alert pages after "
            f"{ctx.held('GunicornRequestsQueued')}); the dotted limit is where the kernel starts refusing "
            "connections.",
            refs([
                (f"max {by(COMPONENT, 'instance')} (gunicorn_listen_backlog{{{sel}}})", "{{job}} {{instance}}"),
                (f"max {by(COMPONENT, 'instance')} (gunicorn_listen_backlog_limit{{{sel}}})",
                 "limit {{job}} {{instance}}"),
            ]),
            "short", thresholds=alert_at(above(t("listen_backlog_connections"))), alerts=c[2]["alerts"], width=8,
        ))
        .with_panel(timeseries_panel(
            ctx, 5, "Worker capacity vs busy",
            "Worker slots (capacity) against requests being served (busy). When busy meets capacity "
            "the tier is full: add workers or move slow work to Celery.",
            refs([
                (f"max {by(COMPONENT, 'instance')} (gunicorn_workers_capacity{{{sel}}})",
                 "capacity {{job}} {{instance}}"),
                (f"sum {by(COMPONENT, 'instance')} (gunicorn_requests_in_flight{{{sel}}})",
                 "busy {{job}} {{instance}}"),
            ]),
            "short", width=8,
        ))
        .with_row(row("Timeouts and worker exits", 101))
        .with_panel(timeseries_panel(
            ctx, 3, c[3]["title"],
            "Workers the master killed for WORKER TIMEOUT in the last 10 minutes: each one is a request "
            "that ran past the gunicorn timeout and a 502 for its user. Any kill fires the alert.",
            [q(f"sum {by(COMPONENT, 'instance')} (increase(gunicorn_worker_timeouts_total{{{sel}}}[10m]))",
               "{{job}} {{instance}}")],
            "short", thresholds=alert_at(above(t("worker_timeouts_per_window"))), alerts=c[3]["alerts"],
            bars=True,
        ))
        .with_panel(timeseries_panel(
            ctx, 4, c[4]["title"],
            "Worker exits in the last 15 minutes by reason. recycled (max_requests), timeout and "
            "shutdown are expected; signal (OOM killer) and crash are not, and fire the alert above "
            f"{t('worker_crashes_per_window')}.",
            [q(f"sum {by(COMPONENT, 'instance', 'reason')} (increase(gunicorn_worker_exits_total{{{sel}}}[15m]))",
               "{{reason}} {{job}} {{instance}}")],
            "short", thresholds=alert_at(above(t("worker_crashes_per_window"))), alerts=c[4]["alerts"],
            bars=True, stack=True,
        ).override_by_regexp("^(signal|crash) .*", [
            dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        ]))
        .with_row(row("Traffic per worker pool", 102))
        .with_panel(timeseries_panel(
            ctx, 6, "Request rate by worker pool",
            "Responses per second of each pool. A flat rate while saturation climbs means requests got "
            "slower, not more numerous.",
            [q(f"sum {by('django')} (rate({RESPONSES}{{{web}}}[$__rate_interval]))", "{{job}}")],
            "reqps", width=8,
        ))
        .with_panel(timeseries_panel(
            ctx, 7, "Latency by worker pool",
            f"p50, p95 and p99 of the request duration of each pool; the line is the slow-request "
            f"threshold ({slow_s:g} s).",
            refs([
                (f"histogram_quantile({quantile}, sum {by('django', 'le')} (rate({LATENCY}{{{web}}}[$__rate_interval])))",
                 f"p{round(quantile * 100)} {{{{job}}}}")
                for quantile in (0.5, 0.95, 0.99)
            ]),
            "s", thresholds=alert_at(slow_s), width=8,
        ))
        .with_panel(stat_panel(
            ctx, 8, "Worker processes",
            "Configured worker processes of each pool and host; capacity is this times threads.",
            [q(f"max {by(COMPONENT, 'instance')} (gunicorn_workers{{{sel}}})", "{{job}} {{instance}}")],
            "short", width=8, height=8,
        ))
    )
