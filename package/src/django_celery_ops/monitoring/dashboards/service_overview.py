"""Service overview: SLOs and error budget, burn rates, firing alerts, every component up or down."""

from grafana_foundation_sdk.builders import dashboard as db

from .common import above, alert_at, q, refs, row, stat_panel, steps, table_panel, timeseries_panel, up_down_mappings
from .provisioning import ALERTMANAGER_UID, PROMETHEUS_NAME

NAME = "service-overview"
BURN_WINDOWS = ("1h", "6h", "1d", "3d")  # the long window of each multiwindow pair
# Components whose targets the "Scrape targets up" panel lists, in this order.
UP_COMPONENTS = ("django", "gunicorn", "celery", "jobs", "redis", "nginx", "nginx_log", "prometheus", "alertmanager")
# Selectors that belong to a component of another name (the proxy's access-log job is nginx's).
_COMPONENT_OF_SELECTOR = {"nginx_log": "nginx"}
PROXY_PANELS = (14, 15, 16)  # the alert panels of the proxy row (built when the config has nginx)
UPSTREAM_RESPONSE = "nginx_upstream_response_seconds_bucket"
EDGE_REQUEST = "nginx_request_seconds_bucket"
QUEUE = "django_http_request_queue_seconds_bucket"


def _burn_steps(ctx):
    """Colour a burn rate by the alert factor it crosses: ticket (1x, 3x) orange, page (6x, 14.4x) red."""
    return steps(
        "green",
        (ctx.slo("ticket_3d_burn_rate"), "yellow"),
        (ctx.slo("ticket_1d_burn_rate"), "orange"),
        (ctx.slo("page_6h_burn_rate"), "red"),
        (ctx.slo("page_1h_burn_rate"), "dark-red"),
    )


def _burn_panel(ctx, id_, panel, slo, target, sli):
    return timeseries_panel(
        ctx, id_, panel["title"],
        f"How many times faster than sustainable the {slo} error budget burns (SLO: {target:.2%} of "
        f"requests {sli} over 30 days); 1x spends exactly the budget. Pages when the 1h rate passes "
        f"{ctx.slo('page_1h_burn_rate'):g}x (or 6h {ctx.slo('page_6h_burn_rate'):g}x) and the short window "
        f"agrees; tickets at 1d {ctx.slo('ticket_1d_burn_rate'):g}x or 3d {ctx.slo('ticket_3d_burn_rate'):g}x.",
        refs([(f"job:django_{slo}_slo:burn_rate{window}{{{ctx.rec('django')}}}", f"{window} {{{{job}}}}")
              for window in BURN_WINDOWS]),
        "suffix:x", thresholds=_burn_steps(ctx), alerts=panel["alerts"],
    )


def _up(ctx):
    """`up` of every configured component's targets: one selector per distinct component selector."""
    selectors = dict.fromkeys(ctx.sel(name) for name in UP_COMPONENTS
                              if name in ctx.selectors and (ctx.has(_COMPONENT_OF_SELECTOR.get(name, name))
                                                            or name in ("prometheus", "alertmanager")))
    return " or ".join(f"up{{{sel}}}" for sel in selectors)


def build(ctx):
    """Return the dashboard builder."""
    c = ctx.panels[NAME]
    jobs, proxy = "jobs" in ctx.components, "nginx" in ctx.components
    alerts = [name for id_, panel in c.items() for name in panel["alerts"]
              if (jobs or id_ not in (12, 13)) and (proxy or id_ not in PROXY_PANELS)]
    latency_s = ctx.slo("latency_seconds")
    board = ctx.dashboard(
        NAME, "Service overview",
        "Start here: are users served within the SLOs, how fast is the error budget going, what is "
        "firing, and is every component up?",
        ctx.scope_variables("up", "common"),
    )
    board = ctx.runbook_links(board, alerts).link(
        db.DashboardLink("Alert groups in Alertmanager").url(f"/alerting/groups?alertmanager={ALERTMANAGER_UID}")
        .icon("bell").tooltip("Firing alerts as Alertmanager groups them, with silences and inhibitions")
    )
    board = (
        board
        .with_row(row("SLOs and error budget", 100))
        .with_panel(stat_panel(
            ctx, 7, "Availability over 3 days",
            f"Share of responses without a 5xx over the last 3 days, per web tier; red below the SLO "
            f"({ctx.slo('availability'):.2%}).",
            [q(f"1 - job:django_http_server_errors:ratio_rate3d{{{ctx.rec('django')}}}", "{{job}}")],
            "percentunit", thresholds=steps("red", (ctx.slo("availability"), "green")), width=8, decimals=3,
        ))
        .with_panel(stat_panel(
            ctx, 8, f"Requests faster than {latency_s:g} s over 3 days",
            f"Share of requests faster than {latency_s:g} s over the last 3 days, per web "
            f"tier; red below the SLO ({ctx.slo('latency'):.0%}).",
            [q(f"1 - job:django_http_slow_requests:ratio_rate3d{{{ctx.rec('django')}}}", "{{job}}")],
            "percentunit", thresholds=steps("red", (ctx.slo("latency"), "green")), width=8, decimals=2,
        ))
        .with_panel(stat_panel(
            ctx, 9, "Error budget left at the 3-day pace",
            "1 - the 3-day burn rate: the share of the 30-day budget that would be left if the last 3 days "
            "went on for the whole month. At 0 or below the budget runs out (the ticket alert's level).",
            refs([
                (f"1 - job:django_availability_slo:burn_rate3d{{{ctx.rec('django')}}}", "availability {{job}}"),
                (f"1 - job:django_latency_slo:burn_rate3d{{{ctx.rec('django')}}}", "latency {{job}}"),
            ]),
            "percentunit", thresholds=steps("red", (1 - ctx.slo("ticket_3d_burn_rate"), "orange"), (0.5, "green")),
            width=8, decimals=1,
        ))
        .with_panel(_burn_panel(ctx, 1, c[1], "availability", ctx.slo("availability"), "answered without a 5xx"))
        .with_panel(_burn_panel(ctx, 2, c[2], "latency", ctx.slo("latency"), f"faster than {latency_s:g} s"))
        .with_row(row("Alerts", 101))
        .with_panel(table_panel(
            ctx, 3, c[3]["title"],
            "Alerts firing now by name and severity (Prometheus ALERTS). Watchdog always fires: if it "
            "is missing, alerting itself is broken.",
            # ALERTS carries the alert's own labels, not a component's: only the variables apply
            # (they match an alert without the label, such as Watchdog, when All is selected).
            [q(f'sum by (alertname, severity) (ALERTS{{alertstate="firing", {", ".join(ctx.variables())}}})',
               instant=True)],
            "short", alerts=c[3]["alerts"], sort_by="severity",
        ))
        .with_panel(
            db.Panel().type("alertlist").id(10).title("Alert rules firing or pending")
            .description("Prometheus alert rules with firing or pending instances, most important first; "
                         "Grafana reads them from the Prometheus datasource's rules API.")
            .span(12).height(8)
            .options({
                "viewMode": "list", "groupMode": "default", "groupBy": [], "maxItems": 20, "sortOrder": 3,
                "dashboardAlerts": False, "alertName": "", "alertInstanceLabelFilter": "",
                "datasource": PROMETHEUS_NAME, "showInstances": True,
                "stateFilter": {"firing": True, "pending": True, "noData": False, "normal": False, "error": True},
            })
        )
        .with_row(row("Components", 102))
        .with_panel(stat_panel(
            ctx, 4, c[4]["title"],
            "Every scrape target, by job and instance: DOWN means Prometheus cannot scrape it and that "
            f"component's alerts cannot fire (PrometheusTargetDown after {ctx.held('PrometheusTargetDown')}).",
            [q(_up(ctx), "{{job}} {{instance}}")],
            "none", thresholds=steps("red", (1, "green")), alerts=c[4]["alerts"], width=24, height=5,
            mappings=up_down_mappings(),
        ))
        .with_panel(timeseries_panel(
            ctx, 11, "Request rate by web tier",
            "Responses per second of each web tier: traffic context for the burn rates.",
            [q(f"job:django_http_requests:rate5m{{{ctx.rec('django')}}}", "{{job}}")],
            "reqps", width=8,
        ))
        .with_panel(timeseries_panel(
            ctx, 5, c[5]["title"],
            "Rule evaluations that failed in the last 5 minutes, by rule group. Any failure is an alert "
            "that silently cannot fire.",
            [q(f"sum {ctx.by('prometheus', 'rule_group')} (increase(prometheus_rule_evaluation_failures_total"
               f"{{{ctx.sel('prometheus')}}}[5m]))", "{{rule_group}}")],
            "short", thresholds=alert_at(above(ctx.th("rule_failures_per_window"))), alerts=c[5]["alerts"],
            width=8, bars=True,
        ))
        .with_panel(timeseries_panel(
            ctx, 6, c[6]["title"],
            "Notifications per second Alertmanager failed to send, by integration; the alert fires when "
            f"more than {ctx.th('notification_failure_ratio'):.0%} of an integration's notifications fail.",
            [q(f"sum {ctx.by('alertmanager', 'integration')} (rate(alertmanager_notifications_failed_total"
               f"{{{ctx.sel('alertmanager')}}}[5m]))", "{{integration}}")],
            "suffix: notifications/s", alerts=c[6]["alerts"], width=8,
        ))
    )
    if proxy:
        board = _proxy_row(ctx, c, board)
    if not jobs:
        return board
    return (
        board
        .with_row(row("Jobs: accepted work reaches a result", 103))
        .with_panel(timeseries_panel(
            ctx, 12, c[12]["title"],
            "Seconds the oldest accepted job has waited unpublished (the outbox), and since the outbox "
            "sweeper last completed a sweep. The page fires when the outbox passes "
            f"{ctx.th('outbox_oldest_age_seconds')} s or the sweep {ctx.th('sweeper_heartbeat_age_seconds')} s, "
            f"for {ctx.held('JobsOutboxStalled')}: accepted uploads and exports are not reaching the broker.",
            refs([
                (f"job:jobs_outbox_oldest_age_seconds:max{{{ctx.rec('jobs')}}}", "oldest unpublished job {{job}}"),
                (f"job:jobs_sweeper_heartbeat_age_seconds:max{{{ctx.rec('jobs')}}}", "last completed sweep {{job}}"),
            ]),
            "s", thresholds=alert_at(ctx.th("sweeper_heartbeat_age_seconds")), alerts=c[12]["alerts"],
        ))
        .with_panel(timeseries_panel(
            ctx, 13, c[13]["title"],
            "Seconds the oldest job of each non-final state has been in it (solid) against that state's "
            "deadline, JOBS_DEADLINE_<STATE>_SECONDS (dashed); the ticket fires when a state stays "
            f"past its deadline for {ctx.held('JobsStuck')}.",
            refs([
                (f"state:jobs_oldest_age_seconds:max{{{ctx.rec('jobs')}}}", "oldest {{state}}"),
                (f"max {ctx.by('jobs', 'state')} (jobs_deadline_seconds{{{ctx.sel('jobs')}}})", "deadline {{state}}"),
            ]),
            "s", alerts=c[13]["alerts"],
        ))
    )


def _proxy_row(ctx, c, board):
    """Add the proxy row: what nginx answered, how fast the upstreams were, how long requests queued."""
    log, exporter, web = ctx.sel("nginx_log"), ctx.sel("nginx"), ctx.sel("django")
    queue_s = ctx.th("request_queue_seconds")
    return (
        board
        .with_row(row("Proxy (nginx): what users get at the edge", 104))
        .with_panel(timeseries_panel(
            ctx, 14, c[14]["title"],
            "Share of the requests nginx proxied to each tier (upstream) that it answered 502 (cannot "
            "connect: the tier is down), 503 or 504 (the upstream outlived proxy_read_timeout). Pages at "
            f"{ctx.th('upstream_error_ratio'):.0%} held for {ctx.held('NginxUpstreamErrors')}, when the tier "
            f"has more than {ctx.th('upstream_min_requests_per_second'):g} requests per second.",
            [q(f"upstream:nginx_http_upstream_errors:ratio_rate5m{{{ctx.rec('nginx_log')}}}", "{{upstream}} {{job}}")],
            "percentunit", thresholds=alert_at(ctx.th("upstream_error_ratio")), alerts=c[14]["alerts"], width=8,
            max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 16, c[16]["title"],
            f"Share of each tier's requests that waited longer than {queue_s:g} s between nginx "
            "(X-Request-Start) and a worker starting them: the listen backlog of a sync tier, the event "
            f"loop of an async one. The ticket fires above {ctx.th('request_queue_slow_ratio'):.0%} held "
            f"for {ctx.held('RequestQueueTimeHigh')}.",
            [q(f"job:django_http_request_queue_slow:ratio_rate5m{{{ctx.rec('django')}}}", "{{job}}")],
            "percentunit", thresholds=alert_at(ctx.th("request_queue_slow_ratio")), alerts=c[16]["alerts"],
            width=8, max_=1,
        ))
        .with_panel(stat_panel(
            ctx, 15, c[15]["title"],
            "The nginx exporter's verdict on stub_status: DOWN pages (NginxDown) after "
            f"{ctx.held('NginxDown', 'critical')}. No value at all means the exporter itself is not "
            "scraped (Scrape targets up, PrometheusTargetDown): nginx may still be serving.",
            [q(f"max {ctx.by('nginx', 'instance')} (nginx_up{{{exporter}}})", "{{job}} {{instance}}")],
            "none", thresholds=steps("red", (1, "green")), alerts=c[15]["alerts"], width=8, height=8,
            mappings=up_down_mappings(),
        ))
        .with_panel(timeseries_panel(
            ctx, 17, "Proxy responses by status class and upstream",
            "Responses per second nginx sent, by status class and the tier that answered; upstream "
            "\"none\" is nginx answering itself (413 too large, 408 a client too slow to send).",
            [q(f"upstream_status_class:nginx_http_responses:rate5m{{{ctx.rec('nginx_log')}}}",
               "{{status_class}} {{upstream}}")],
            "reqps", width=8, stack=True,
        ))
        .with_panel(timeseries_panel(
            ctx, 18, "Upstream response time p50/p95",
            "How long each tier took to answer nginx (p50, p95 of $upstream_response_time), against the "
            "whole request at the edge (p95 of $request_time, which adds the client's own sending and "
            "receiving): a wide gap is slow clients, which the buffering proxy absorbs.",
            refs([
                *((f"histogram_quantile({quantile}, sum {ctx.by('nginx_log', 'upstream', 'le')} "
                   f"(rate({UPSTREAM_RESPONSE}{{{log}}}[$__rate_interval])))",
                   f"upstream p{round(quantile * 100)} {{{{upstream}}}}") for quantile in (0.5, 0.95)),
                (f"histogram_quantile(0.95, sum {ctx.by('nginx_log', 'upstream', 'le')} "
                 f"(rate({EDGE_REQUEST}{{{log}}}[$__rate_interval])))", "edge p95 {{upstream}}"),
            ]),
            "s", width=8,
        ))
        .with_panel(timeseries_panel(
            ctx, 19, "Client-closed requests (499)",
            "Share of each tier's proxied requests whose client hung up before nginx answered (nginx's "
            "499). It follows slow answers (the panels above, DjangoSlowRequests); a rise alone is a "
            "client's own timeout or a client release.",
            [q(f"upstream:nginx_http_client_closed:ratio_rate5m{{{ctx.rec('nginx_log')}}}", "{{upstream}} {{job}}")],
            "percentunit", width=8, max_=1,
        ))
        .with_panel(timeseries_panel(
            ctx, 21, "Queue time p50/p95",
            "How long requests waited between nginx and a worker (django_http_request_queue_seconds, from "
            f"X-Request-Start); the line is request_queue_seconds ({queue_s:g} s).",
            refs([
                (f"histogram_quantile({quantile}, sum {ctx.by('django', 'le')} (rate({QUEUE}{{{web}}}[$__rate_interval])))",
                 f"p{round(quantile * 100)} {{{{job}}}}")
                for quantile in (0.5, 0.95)
            ]),
            "s", thresholds=alert_at(queue_s), width=12,
        ))
        .with_panel(timeseries_panel(
            ctx, 20, "Proxy connections",
            "Client connections nginx holds (stub_status): reading a request, writing a response, idle "
            "keepalive (waiting). Slow clients show as reading/writing here while the workers stay free.",
            refs([
                (f"sum {ctx.by('nginx')} (nginx_connections_{state}{{{exporter}}})", f"{state} {{{{job}}}}")
                for state in ("active", "reading", "writing", "waiting")
            ]),
            "short", width=12,
        ))
    )
