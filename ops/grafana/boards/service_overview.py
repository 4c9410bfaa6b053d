"""Service overview: SLOs and error budget, burn rates, firing alerts, every component up or down."""

from grafana_foundation_sdk.builders import dashboard as db

from boards.common import (
    ALERTMANAGER_UID,
    PROMETHEUS_NAME,
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

UID = "service-overview"
JOB = 'job=~"$job"'
BURN_WINDOWS = ("1h", "6h", "1d", "3d")  # the long window of each multiwindow pair


def _burn_steps():
    """Colour a burn rate by the alert factor it crosses: ticket (1x, 3x) orange, page (6x, 14.4x) red."""
    return steps(
        "green",
        (t.ticket_3d_burn_rate, "yellow"),
        (t.ticket_1d_burn_rate, "orange"),
        (t.page_6h_burn_rate, "red"),
        (t.page_1h_burn_rate, "dark-red"),
    )


def _burn_panel(id_, panel, slo, target, sli):
    return timeseries_panel(
        id_, panel["title"],
        f"How many times faster than sustainable the {slo} error budget burns (SLO: {target:.2%} of "
        f"requests {sli} over 30 days); 1x spends exactly the budget. Pages when the 1h rate passes "
        f"{t.page_1h_burn_rate:g}x (or 6h {t.page_6h_burn_rate:g}x) and the short window agrees; "
        f"tickets at 1d {t.ticket_1d_burn_rate:g}x or 3d {t.ticket_3d_burn_rate:g}x.",
        [
            q(f"job:django_{slo}_slo:burn_rate{window}{{{JOB}}}", f"{window} {{{{job}}}}", ref=chr(ord("A") + i))
            for i, window in enumerate(BURN_WINDOWS)
        ],
        "suffix:x", thresholds=_burn_steps(), alerts=panel["alerts"],
    )


def build():
    """Return the dashboard builder."""
    c = contract(UID)
    alerts = [name for panel in c.values() for name in panel["alerts"]]
    board = dashboard(
        UID, "Service overview",
        "Start here: are users served within the SLOs, how fast is the error budget going, what is "
        "firing, and is every component up?",
        [variable("job", "Job", "up", "job")],
    )
    board = runbook_links(board, alerts).link(
        db.DashboardLink("Alert groups in Alertmanager").url(f"/alerting/groups?alertmanager={ALERTMANAGER_UID}")
        .icon("bell").tooltip("Firing alerts as Alertmanager groups them, with silences and inhibitions")
    )
    return (
        board
        .with_row(row("SLOs and error budget", 100))
        .with_panel(stat_panel(
            7, "Availability over 3 days",
            f"Share of responses without a 5xx over the last 3 days, per web tier; red below the SLO "
            f"({t.availability_slo_ratio:.2%}).",
            [q(f"1 - job:django_http_server_errors:ratio_rate3d{{{JOB}}}", "{{job}}")],
            "percentunit", thresholds=steps("red", (t.availability_slo_ratio, "green")), width=8, decimals=3,
        ))
        .with_panel(stat_panel(
            8, f"Requests faster than {t.slow_request_seconds:g} s over 3 days",
            f"Share of requests faster than {t.slow_request_seconds:g} s over the last 3 days, per web "
            f"tier; red below the SLO ({t.latency_slo_ratio:.0%}).",
            [q(f"1 - job:django_http_slow_requests:ratio_rate3d{{{JOB}}}", "{{job}}")],
            "percentunit", thresholds=steps("red", (t.latency_slo_ratio, "green")), width=8, decimals=2,
        ))
        .with_panel(stat_panel(
            9, "Error budget left at the 3-day pace",
            "1 - the 3-day burn rate: the share of the 30-day budget that would be left if the last 3 days "
            "went on for the whole month. At 0 or below the budget runs out (the ticket alert's level).",
            [
                q(f"1 - job:django_availability_slo:burn_rate3d{{{JOB}}}", "availability {{job}}"),
                q(f"1 - job:django_latency_slo:burn_rate3d{{{JOB}}}", "latency {{job}}", ref="B"),
            ],
            "percentunit", thresholds=steps("red", (1 - t.ticket_3d_burn_rate, "orange"), (0.5, "green")),
            width=8, decimals=1,
        ))
        .with_panel(_burn_panel(1, c[1], "availability", t.availability_slo_ratio, "answered without a 5xx"))
        .with_panel(_burn_panel(2, c[2], "latency", t.latency_slo_ratio,
                                f"faster than {t.slow_request_seconds:g} s"))
        .with_row(row("Alerts", 101))
        .with_panel(table_panel(
            3, c[3]["title"],
            "Alerts firing now by name and severity (Prometheus ALERTS). Watchdog always fires: if it "
            "is missing, alerting itself is broken.",
            [q('sum by (alertname, severity) (ALERTS{alertstate="firing"})', instant=True)],
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
            4, c[4]["title"],
            "Every scrape target, by job and instance: DOWN means Prometheus cannot scrape it and that "
            "component's alerts cannot fire (PrometheusTargetDown after 5 minutes).",
            [q(f"up{{{JOB}}}", "{{job}} {{instance}}")],
            "none", thresholds=steps("red", (1, "green")), alerts=c[4]["alerts"], width=24, height=5,
            mappings=up_down_mappings(),
        ))
        .with_panel(timeseries_panel(
            11, "Request rate by web tier",
            "Responses per second of each web tier: traffic context for the burn rates.",
            [q(f"job:django_http_requests:rate5m{{{JOB}}}", "{{job}}")],
            "reqps", width=8,
        ))
        .with_panel(timeseries_panel(
            5, c[5]["title"],
            "Rule evaluations that failed in the last 5 minutes, by rule group. Any failure is an alert "
            "that silently cannot fire.",
            [q("sum by (rule_group) (increase(prometheus_rule_evaluation_failures_total"
               f"{{{JOB}}}[5m]))", "{{rule_group}}")],
            "short", thresholds=alert_at(above(t.rule_failures_per_window)), alerts=c[5]["alerts"], width=8,
            bars=True,
        ))
        .with_panel(timeseries_panel(
            6, c[6]["title"],
            "Notifications per second Alertmanager failed to send, by integration; the alert fires when "
            f"more than {t.notification_failure_ratio:.0%} of an integration's notifications fail.",
            [q("sum by (integration) (rate(alertmanager_notifications_failed_total"
               f"{{{JOB}}}[5m]))", "{{integration}}")],
            "suffix: notifications/s", alerts=c[6]["alerts"], width=8,
        ))
        .with_row(row("Jobs: accepted work reaches a result", 103))
        .with_panel(timeseries_panel(
            12, c[12]["title"],
            "Seconds the oldest accepted job has waited unpublished (the outbox), and since the outbox "
            "sweeper last completed a sweep. The page fires when the outbox passes "
            f"{t.outbox_oldest_age_seconds} s or the sweep {t.sweeper_heartbeat_age_seconds} s, for 2 "
            "minutes: accepted uploads and exports are not reaching the broker.",
            [
                q(f"job:jobs_outbox_oldest_age_seconds:max{{{JOB}}}", "oldest unpublished job {{job}}"),
                q(f"job:jobs_sweeper_heartbeat_age_seconds:max{{{JOB}}}", "last completed sweep {{job}}", ref="B"),
            ],
            "s", thresholds=alert_at(t.sweeper_heartbeat_age_seconds), alerts=c[12]["alerts"],
        ))
        .with_panel(timeseries_panel(
            13, c[13]["title"],
            "Seconds the oldest job of each non-final state has been in it (solid) against that state's "
            "deadline, JOBS_DEADLINE_<STATE>_SECONDS (dashed); the ticket fires when a state stays "
            "past its deadline for 5 minutes.",
            [
                q(f"state:jobs_oldest_age_seconds:max{{{JOB}}}", "oldest {{state}}"),
                q(f"max by (job, state) (jobs_deadline_seconds{{{JOB}}})", "deadline {{state}}", ref="B"),
            ],
            "s", alerts=c[13]["alerts"],
        ))
    )
