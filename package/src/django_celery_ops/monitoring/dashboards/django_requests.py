"""Django requests: rate, errors, latency and slow requests by view, exceptions, database, week over week."""

from .common import above, alert_at, q, refs, row, stat_panel, table_panel, timeseries_panel, variable

NAME = "django-requests"
COMPONENT = "django"
RESPONSES = "django_http_responses_total_by_status_view_method_total"
LATENCY = "django_http_requests_latency_seconds_by_view_method_bucket"
VIEW = 'view=~"$view"'


def build(ctx):
    """Return the dashboard builder."""
    c = ctx.panels[NAME]
    t = ctx.th
    slow_s = ctx.slo("latency_seconds")
    sel = ctx.sel(COMPONENT)  # tier-wide series (database, event loop, migrations)
    view = ctx.sel(COMPONENT, VIEW)  # per-view series
    view_rec = ctx.rec(COMPONENT, VIEW)
    by = ctx.by

    def rate(metric, matchers=view, window="$__rate_interval", offset=""):
        return f"rate({metric}{{{matchers}}}[{window}]{offset})"

    def share(status):
        # 0, not "no data", while the tier answers but never with this class
        only = ctx.sel(COMPONENT, VIEW, f'status=~"{status}"')
        return (f"(sum {by(COMPONENT)} ({rate(RESPONSES, only)})"
                f" or sum {by(COMPONENT)} ({rate(RESPONSES)}) * 0)"
                f" / sum {by(COMPONENT)} ({rate(RESPONSES)})")

    def latency(quantile, offset=""):
        return f"histogram_quantile({quantile}, sum {by(COMPONENT, 'le')} ({rate(LATENCY, offset=offset)}))"

    board = ctx.dashboard(
        NAME, "Django requests",
        "Which view is slow or failing, since when, and is it the database? Every web tier the "
        "django selector picks carries the same families; pick them with the job variable.",
        [
            *ctx.scope_variables(RESPONSES, COMPONENT),
            variable("view", "View", RESPONSES, "view", sel),
        ],
    )
    alerts = [name for panel in c.values() for name in panel["alerts"]]
    board = ctx.runbook_links(board, alerts + ["DjangoAvailabilityBudgetBurn", "DjangoLatencyBudgetBurn"])
    slow_pct = f"{t('slow_request_ratio'):.0%}"
    return (
        board
        .with_row(row("Traffic and errors", 100))
        .with_panel(timeseries_panel(
            ctx, 1, c[1]["title"],
            "Responses per second of each view (5m rate). Alerts ignore views below "
            f"{t('view_min_requests_per_second'):g} req/s: too few requests to judge a ratio.",
            [q(f"view:django_http_requests:rate5m{{{view_rec}}}", "{{job}} {{view}}")],
            "reqps",
        ))
        .with_panel(timeseries_panel(
            ctx, 2, c[2]["title"],
            "Share of each view's responses that are 5xx over 5 minutes; the alert fires above "
            f"{t('server_error_ratio'):.0%} for {ctx.held('DjangoHighServerErrorRate')}. Check Exceptions "
            "by type for the cause.",
            [q(f"view:django_http_server_errors:ratio_rate5m{{{view_rec}}}",
               "{{job}} {{view}}")],
            "percentunit", thresholds=alert_at(t("server_error_ratio")), alerts=c[2]["alerts"], max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 7, "Responses by status",
            "Responses per second by HTTP status: 4xx are client mistakes, 5xx are ours.",
            [q(f"sum {by(COMPONENT, 'status')} ({rate(RESPONSES)})", "{{job}} {{status}}")],
            "reqps", stack=True,
        ))
        .with_panel(timeseries_panel(
            ctx, 16, "4xx and 5xx share of responses",
            "The client-error (4xx) and server-error (5xx) share of each tier's responses, stacked: "
            "a rising 4xx share is a client or an auth problem, a rising 5xx share is ours.",
            refs([(share("4.."), "4xx {{job}}"), (share("5.."), "5xx {{job}}")]),
            "percentunit", stack=True, max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 8, "Exceptions by type",
            "Exceptions raised out of views per second, by exception class: the usual cause of 5xx.",
            [q(f"sum {by(COMPONENT, 'type')} ({rate('django_http_exceptions_total_by_type_total', sel)})",
               "{{job}} {{type}}")],
            "suffix: exceptions/s",
        ))
        .with_panel(table_panel(
            ctx, 17, "Top exceptions by type",
            "The ten exception classes raised out of views most often over the dashboard's time range.",
            [q("topk(10, sum " + by(COMPONENT, "type") + " (increase(django_http_exceptions_total_by_type_total"
               f"{{{sel}}}[$__range])))", instant=True)],
            "short", sort_by="Value", width=6,
        ))
        .with_panel(table_panel(
            ctx, 18, "Top views raising exceptions",
            "The ten views that raised exceptions most often over the dashboard's time range.",
            [q("topk(10, sum " + by(COMPONENT, "view") + " (increase(django_http_exceptions_total_by_view_total"
               f"{{{view}}}[$__range])))", instant=True)],
            "short", sort_by="Value", width=6,
        ))
        .with_row(row("Latency and slow requests", 101))
        .with_panel(timeseries_panel(
            ctx, 3, c[3]["title"],
            f"Share of each view's requests slower than {slow_s:g} s over 5 minutes; the alert fires above "
            f"{slow_pct} for {ctx.held('DjangoSlowRequests')}. A blocking call in the view (sleep, CPU loop, "
            "export done in the request) shows here first.",
            [q(f"view:django_http_slow_requests:ratio_rate5m{{{view_rec}}}",
               "{{job}} {{view}}")],
            "percentunit", thresholds=alert_at(t("slow_request_ratio")), alerts=c[3]["alerts"], max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 4, c[4]["title"],
            f"95th percentile of the request duration of each view; the line is the slow-request "
            f"threshold ({slow_s:g} s).",
            [q(f"histogram_quantile(0.95, sum {by(COMPONENT, 'view', 'le')} ({rate(LATENCY, window='5m')}))",
               "{{job}} {{view}}")],
            "s", thresholds=alert_at(slow_s),
        ))
        .with_panel(timeseries_panel(
            ctx, 9, "Latency p50 and p99 by view",
            "Median and 99th percentile of each view: a p99 far above the median means a few requests "
            "hit something slow (a lock, a cold cache, a slow dependency).",
            refs([
                (f"histogram_quantile(0.5, sum {by(COMPONENT, 'view', 'le')} ({rate(LATENCY)}))",
                 "p50 {{job}} {{view}}"),
                (f"histogram_quantile(0.99, sum {by(COMPONENT, 'view', 'le')} ({rate(LATENCY)}))",
                 "p99 {{job}} {{view}}"),
            ]),
            "s", thresholds=alert_at(slow_s),
        ))
        .with_panel(timeseries_panel(
            ctx, 10, "Slow requests by view",
            f"Requests per second slower than {slow_s:g} s, counted by the middleware: "
            "which views hold workers the longest.",
            [q(f"sum {by(COMPONENT, 'view')} ({rate('django_http_slow_requests_total')})", "{{job}} {{view}}")],
            "reqps",
        ))
        .with_row(row("Week over week", 104))
        .with_panel(timeseries_panel(
            ctx, 19, "Request rate, this week and last",
            "Responses per second of each tier (solid) against the same time a week earlier (dashed, "
            "`offset 1w`): is today's traffic unusual? No dashed line on a stack younger than a week.",
            refs([
                (f"sum {by(COMPONENT)} ({rate(RESPONSES)})", "{{job}}"),
                (f"sum {by(COMPONENT)} ({rate(RESPONSES, offset=' offset 1w')})", "{{job}} a week ago"),
            ]),
            "reqps", dashed=("B",),
        ))
        .with_panel(timeseries_panel(
            ctx, 20, "Latency p95, this week and last",
            "95th percentile of the request duration of each tier (solid) against the same time a week "
            "earlier (dashed, `offset 1w`): slower than last week at the same traffic means a "
            "regression, not load.",
            refs([
                (latency(0.95), "p95 {{job}}"),
                (latency(0.95, offset=" offset 1w"), "p95 {{job}} a week ago"),
            ]),
            "s", thresholds=alert_at(slow_s), dashed=("B",),
        ))
        .with_row(row("Runtime and database", 102))
        .with_panel(timeseries_panel(
            ctx, 5, c[5]["title"],
            "How late the ASGI event loop ran its timers (p99 over 5 minutes). Above "
            f"{t('event_loop_lag_seconds'):g} s a synchronous call blocks the loop and every request of "
            f"that worker stalls; the alert fires after {ctx.held('DjangoEventLoopBlocked')}.",
            [q(f"histogram_quantile({t('event_loop_lag_quantile_ratio')}, sum {by(COMPONENT, 'instance', 'le')} "
               f"({rate('django_asgi_event_loop_lag_seconds_bucket', sel, '5m')}))", "{{job}} {{instance}}")],
            "s", thresholds=alert_at(t("event_loop_lag_seconds")), alerts=c[5]["alerts"], width=8,
        ))
        .with_panel(timeseries_panel(
            ctx, 11, "Database query time",
            "Mean and p95 duration of the database queries each tier runs; high while views are slow "
            "means the database, not the view code, is the bottleneck.",
            refs([
                (f"sum {by(COMPONENT, 'alias')} ({rate('django_db_query_duration_seconds_sum', sel)})"
                 f" / sum {by(COMPONENT, 'alias')} ({rate('django_db_query_duration_seconds_count', sel)})",
                 "mean {{job}} {{alias}}"),
                (f"histogram_quantile(0.95, sum {by(COMPONENT, 'alias', 'le')} "
                 f"({rate('django_db_query_duration_seconds_bucket', sel)}))", "p95 {{job}} {{alias}}"),
            ]),
            "s", width=8,
        ))
        .with_panel(timeseries_panel(
            ctx, 12, "Database queries per second",
            "Queries executed per second; a jump at equal traffic is an N+1 query in a view.",
            [q(f"sum {by(COMPONENT, 'alias')} ({rate('django_db_execute_total', sel)})", "{{job}} {{alias}}")],
            "suffix: queries/s", width=8,
        ))
        .with_panel(stat_panel(
            ctx, 6, c[6]["title"],
            "Migrations the running code expects but the database lacks; anything above "
            f"{t('unapplied_migrations_count')} for {ctx.held('DjangoMigrationsUnapplied')} fires the alert: "
            "run `manage.py migrate`.",
            [q(f"max {by(COMPONENT, 'instance', 'connection')} (django_migrations_unapplied_total{{{sel}}})",
               "{{job}} {{instance}} {{connection}}")],
            "short", thresholds=alert_at(above(t("unapplied_migrations_count"))), alerts=c[6]["alerts"],
            width=24, height=4,
        ))
        .with_row(row("Client errors, database errors and connections, instrumentation", 103))
        .with_panel(timeseries_panel(
            ctx, 13, c[13]["title"],
            "Share of each tier's responses that are 4xx over 5 minutes; the ticket fires above "
            f"{t('client_error_ratio'):.0%} for {ctx.held('DjangoHighClientErrorRate')} on a tier serving "
            f"more than {t('client_error_min_requests_per_second'):g} req/s. Responses by status says which "
            "4xx (401 a token, 403 CSRF, 404 a client bug, 429 the rate limit).",
            [q(f"job:django_http_client_errors:ratio_rate5m{{{ctx.rec(COMPONENT)}}}", "{{job}}")],
            "percentunit", thresholds=alert_at(t("client_error_ratio")), alerts=c[13]["alerts"], width=12,
            max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 14, c[14]["title"],
            "Statements that raised plus connections the database refused, per second, by tier and "
            f"database; the ticket fires above {t('database_errors_per_second'):g}/s for "
            f"{ctx.held('DjangoDatabaseErrors')}. The second query splits the statements by exception class.",
            refs([
                (f"alias:django_db_errors:rate5m{{{ctx.rec(COMPONENT)}}}", "{{job}} {{alias}}"),
                (f"sum {by(COMPONENT, 'type')} ({rate('django_db_errors_total', sel)})", "{{job}} {{type}}"),
            ]),
            "suffix: errors/s", thresholds=alert_at(t("database_errors_per_second")), alerts=c[14]["alerts"],
            width=12,
        ))
        .with_panel(timeseries_panel(
            ctx, 21, "New database connections",
            "Connections opened per second (django_db_new_connections_total) and those the database "
            "refused (django_db_new_connection_errors_total). A rate close to the request rate means "
            "no persistent connections (CONN_MAX_AGE=0); refusals mean the server is down or full.",
            refs([
                (f"sum {by(COMPONENT, 'alias')} ({rate('django_db_new_connections_total', sel)})",
                 "opened {{job}} {{alias}}"),
                (f"sum {by(COMPONENT, 'alias')} ({rate('django_db_new_connection_errors_total', sel)})"
                 f" or sum {by(COMPONENT, 'alias')} ({rate('django_db_new_connections_total', sel)}) * 0",
                 "refused {{job}} {{alias}}"),
            ]),
            "suffix: connections/s", width=12,
        ))
        .with_panel(timeseries_panel(
            ctx, 15, c[15]["title"],
            "Failures inside the request middleware or the ASGI guard in the last 10 minutes, by stage. "
            "The request went on, but its metrics or log line are missing; any failure opens a ticket.",
            [q(f"sum {by(COMPONENT, 'instance', 'stage')} (increase(django_instrumentation_errors_total"
               f"{{{sel}}}[10m]))", "{{job}} {{instance}} {{stage}}")],
            "short", thresholds=alert_at(above(t("instrumentation_errors_per_window"))), alerts=c[15]["alerts"],
            width=12, bars=True,
        ))
    )
