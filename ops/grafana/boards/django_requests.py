"""Django requests: rate, errors, latency and slow requests by view, exceptions, database time."""

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

UID = "django-requests"
JOB = 'job=~"$job"'
SEL = 'job=~"$job", view=~"$view"'
RESPONSES = "django_http_responses_total_by_status_view_method_total"
LATENCY = "django_http_requests_latency_seconds_by_view_method_bucket"


def build():
    """Return the dashboard builder."""
    c = contract(UID)
    alerts = [name for panel in c.values() for name in panel["alerts"]]
    board = dashboard(
        UID, "Django requests",
        "Which view is slow or failing, since when, and is it the database? Both web tiers "
        "(django-wsgi, django-asgi) carry the same families; pick them with the job variable.",
        [
            variable("job", "Web tier", RESPONSES, "job"),
            variable("view", "View", RESPONSES, "view", JOB),
        ],
    )
    board = runbook_links(board, alerts + ["DjangoAvailabilityBudgetBurn", "DjangoLatencyBudgetBurn"])
    slow_pct = f"{t.slow_request_ratio:.0%}"
    return (
        board
        .with_row(row("Traffic and errors", 100))
        .with_panel(timeseries_panel(
            1, c[1]["title"],
            "Responses per second of each view (5m rate). Alerts ignore views below "
            f"{t.view_min_requests_per_second:g} req/s: too few requests to judge a ratio.",
            [q(f"view:django_http_requests:rate5m{{{SEL}}}", "{{job}} {{view}}")],
            "reqps",
        ))
        .with_panel(timeseries_panel(
            2, c[2]["title"],
            "Share of each view's responses that are 5xx over 5 minutes; the alert fires above "
            f"{t.server_error_ratio:.0%} for 5 minutes. Check Exceptions by type for the cause.",
            [q(f"view:django_http_server_errors:ratio_rate5m{{{SEL}}}", "{{job}} {{view}}")],
            "percentunit", thresholds=alert_at(t.server_error_ratio), alerts=c[2]["alerts"], max_=1,
        ))
        .with_panel(timeseries_panel(
            7, "Responses by status",
            "Responses per second by HTTP status: 4xx are client mistakes, 5xx are ours.",
            [q(f"sum by (job, status) (rate({RESPONSES}{{{SEL}}}[$__rate_interval]))", "{{job}} {{status}}")],
            "reqps", stack=True,
        ))
        .with_panel(timeseries_panel(
            8, "Exceptions by type",
            "Exceptions raised out of views per second, by exception class: the usual cause of 5xx.",
            [q(f"sum by (job, type) (rate(django_http_exceptions_total_by_type_total{{{JOB}}}[$__rate_interval]))",
               "{{job}} {{type}}")],
            "suffix: exceptions/s",
        ))
        .with_row(row("Latency and slow requests", 101))
        .with_panel(timeseries_panel(
            3, c[3]["title"],
            f"Share of each view's requests slower than {t.slow_request_seconds:g} s over 5 minutes; the "
            f"alert fires above {slow_pct} for 10 minutes. A blocking call in the view (sleep, CPU loop, "
            "export done in the request) shows here first.",
            [q(f"view:django_http_slow_requests:ratio_rate5m{{{SEL}}}", "{{job}} {{view}}")],
            "percentunit", thresholds=alert_at(t.slow_request_ratio), alerts=c[3]["alerts"], max_=1,
        ))
        .with_panel(timeseries_panel(
            4, c[4]["title"],
            f"95th percentile of the request duration of each view; the line is the slow-request "
            f"threshold ({t.slow_request_seconds:g} s).",
            [q("histogram_quantile(0.95, sum by (job, view, le) "
               f"(rate({LATENCY}{{{SEL}}}[5m])))", "{{job}} {{view}}")],
            "s", thresholds=alert_at(t.slow_request_seconds),
        ))
        .with_panel(timeseries_panel(
            9, "Latency p50 and p99 by view",
            "Median and 99th percentile of each view: a p99 far above the median means a few requests "
            "hit something slow (a lock, a cold cache, a slow dependency).",
            [
                q(f"histogram_quantile(0.5, sum by (job, view, le) (rate({LATENCY}{{{SEL}}}[$__rate_interval])))",
                  "p50 {{job}} {{view}}"),
                q(f"histogram_quantile(0.99, sum by (job, view, le) (rate({LATENCY}{{{SEL}}}[$__rate_interval])))",
                  "p99 {{job}} {{view}}", ref="B"),
            ],
            "s", thresholds=alert_at(t.slow_request_seconds),
        ))
        .with_panel(timeseries_panel(
            10, "Slow requests by view",
            f"Requests per second slower than {t.slow_request_seconds:g} s, counted by the middleware: "
            "which views hold workers the longest.",
            [q(f"sum by (job, view) (rate(django_http_slow_requests_total{{{SEL}}}[$__rate_interval]))",
               "{{job}} {{view}}")],
            "reqps",
        ))
        .with_row(row("Runtime and database", 102))
        .with_panel(timeseries_panel(
            5, c[5]["title"],
            "How late the ASGI event loop ran its timers (p99 over 5 minutes). Above "
            f"{t.event_loop_lag_seconds:g} s a synchronous call blocks the loop and every request of "
            "that worker stalls; the alert fires after 5 minutes.",
            [q(f"histogram_quantile({t.event_loop_lag_quantile_ratio}, sum by (job, instance, le) "
               f"(rate(django_asgi_event_loop_lag_seconds_bucket{{{JOB}}}[5m])))", "{{job}} {{instance}}")],
            "s", thresholds=alert_at(t.event_loop_lag_seconds), alerts=c[5]["alerts"], width=8,
        ))
        .with_panel(timeseries_panel(
            11, "Database query time",
            "Mean and p95 duration of the database queries each tier runs; high while views are slow "
            "means the database, not the view code, is the bottleneck.",
            [
                q(f"sum by (job, alias) (rate(django_db_query_duration_seconds_sum{{{JOB}}}[$__rate_interval]))"
                  f" / sum by (job, alias) (rate(django_db_query_duration_seconds_count{{{JOB}}}[$__rate_interval]))",
                  "mean {{job}} {{alias}}"),
                q("histogram_quantile(0.95, sum by (job, alias, le) "
                  f"(rate(django_db_query_duration_seconds_bucket{{{JOB}}}[$__rate_interval])))",
                  "p95 {{job}} {{alias}}", ref="B"),
            ],
            "s", width=8,
        ))
        .with_panel(timeseries_panel(
            12, "Database queries per second",
            "Queries executed per second; a jump at equal traffic is an N+1 query in a view.",
            [q(f"sum by (job, alias) (rate(django_db_execute_total{{{JOB}}}[$__rate_interval]))",
               "{{job}} {{alias}}")],
            "suffix: queries/s", width=8,
        ))
        .with_panel(stat_panel(
            6, c[6]["title"],
            "Migrations the running code expects but the database lacks; anything above "
            f"{t.unapplied_migrations_count} for 15 minutes fires the alert: run `manage.py migrate`.",
            [q(f"max by (job, instance, connection) (django_migrations_unapplied_total{{{JOB}}})",
               "{{job}} {{instance}} {{connection}}")],
            "short", thresholds=alert_at(above(t.unapplied_migrations_count)), alerts=c[6]["alerts"],
            width=24, height=4,
        ))
        .with_row(row("Client errors, database errors, instrumentation", 103))
        .with_panel(timeseries_panel(
            13, c[13]["title"],
            "Share of each tier's responses that are 4xx over 5 minutes; the ticket fires above "
            f"{t.client_error_ratio:.0%} for 15 minutes on a tier serving more than "
            f"{t.client_error_min_requests_per_second:g} req/s. Responses by status says which 4xx "
            "(401 a token, 403 CSRF, 404 a client bug, 429 the rate limit).",
            [q(f"job:django_http_client_errors:ratio_rate5m{{{JOB}}}", "{{job}}")],
            "percentunit", thresholds=alert_at(t.client_error_ratio), alerts=c[13]["alerts"], width=8, max_=1,
        ))
        .with_panel(timeseries_panel(
            14, c[14]["title"],
            "Statements that raised plus connections the database refused, per second, by tier and "
            f"database; the ticket fires above {t.database_errors_per_second:g}/s for 5 minutes. "
            "The second query splits the statements by exception class.",
            [
                q(f"alias:django_db_errors:rate5m{{{JOB}}}", "{{job}} {{alias}}"),
                q(f"sum by (job, type) (rate(django_db_errors_total{{{JOB}}}[$__rate_interval]))",
                  "{{job}} {{type}}", ref="B"),
            ],
            "suffix: errors/s", thresholds=alert_at(t.database_errors_per_second), alerts=c[14]["alerts"],
            width=8,
        ))
        .with_panel(timeseries_panel(
            15, c[15]["title"],
            "Failures inside the request middleware or the ASGI guard in the last 10 minutes, by stage. "
            "The request went on, but its metrics or log line are missing; any failure opens a ticket.",
            [q("sum by (job, instance, stage) (increase(django_instrumentation_errors_total"
               f"{{{JOB}}}[10m]))", "{{job}} {{instance}} {{stage}}")],
            "short", thresholds=alert_at(above(t.instrumentation_errors_per_window)), alerts=c[15]["alerts"],
            width=8, bars=True,
        ))
    )
