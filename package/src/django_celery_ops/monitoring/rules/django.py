"""Django: per-view errors and latency, the availability and latency SLOs, the event loop, the database."""

from ..lib import Selectors, alert, groups, human_duration, le, pct, record

RESPONSES = "django_http_responses_total_by_status_view_method_total"
LATENCY = "django_http_requests_latency_seconds_by_view_method"
DB_ERRORS = "django_db_errors_total|django_db_new_connection_errors_total"
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")  # what the multiwindow burn-rate alerts read


def _burn_alerts(cfg, s, name, slo, target_ratio, sli, bad):
    """Return the page and ticket rules of one SLO (Google SRE workbook, multiwindow multi-burn-rate)."""
    rate, o = f"job:django_{slo}_slo:burn_rate", cfg["slo"]

    def expr(fast, slow):
        (factor1, long1, short1), (factor2, long2, short2) = fast, slow
        return f"""
            (
              {rate}{long1}{s()} > {factor1}
              and
              {rate}{short1}{s()} > {factor1}
            )
            or
            (
              {rate}{long2}{s()} > {factor2}
              and
              {rate}{short2}{s()} > {factor2}
            )
        """

    def description(fast, slow, then):
        """Say per window what the burn rate means: the share of requests that failed the SLI."""
        windows = []
        for factor, long, short in (fast, slow):
            windows.append(f"over the last {human_duration(long)} (and the last {human_duration(short)}) more than "
                           f"{pct(round(factor * (1 - target_ratio), 6))} of requests {bad} "
                           f"({factor:g}x)")
        return ("{{ $labels.job }} spends its " f"{slo} error budget (SLO: {pct(target_ratio)} of requests {sli}) "
                "at {{ $value | humanize }}x the sustainable rate: " + ", or ".join(windows) + f"; {then}")

    page = ((o["page_1h_burn_rate"], "1h", "5m"), (o["page_6h_burn_rate"], "6h", "30m"))
    ticket = ((o["ticket_1d_burn_rate"], "1d", "2h"), (o["ticket_3d_burn_rate"], "3d", "6h"))
    return [
        # Page: 2% of the 30-day budget gone in 1h, or 5% in 6h; the short window stops the page
        # soon after the burn ends.
        alert(
            cfg, name, expr(*page),
            severity="critical", component="django",
            summary=f"{{{{ $labels.job }}}} burns its {slo} error budget fast.",
            description=description(*page, then="the 30-day budget lasts days at this pace."),
        ),
        # Ticket: 10% of the budget gone in 1d or 3d; slow leaks someone should fix this week.
        alert(
            cfg, name, expr(*ticket),
            severity="warning", component="django",
            summary=f"{{{{ $labels.job }}}} burns its {slo} error budget steadily.",
            description=description(*ticket, then="the 30-day budget runs out before the 30 days do."),
        ),
    ]


def _not_probes(o):
    """Return the matcher that leaves the probe views out of an SLI ('' when none is excluded)."""
    views = "|".join(o["excluded_views"])
    return (f'view!~"{views}"',) if views else ()


def _recording(cfg, s):
    slow_le, o = le(cfg["slo"]["latency_seconds"]), cfg["slo"]
    five, four, slow = s('status=~"5.."'), s('status=~"4.."'), s(f'le="{slow_le}"')
    db_errors = s(f'__name__=~"{DB_ERRORS}"')
    recording = [
        record("view:django_http_requests:rate5m", f"sum {s.by('view')} (rate({RESPONSES}{s()}[5m]))"),
        record("job:django_http_requests:rate5m", f"sum {s.by()} (view:django_http_requests:rate5m{s()})"),
        record("view:django_http_server_errors:ratio_rate5m", f"""
            sum {s.by('view')} (rate({RESPONSES}{five}[5m]))
            /
            sum {s.by('view')} (rate({RESPONSES}{s()}[5m]))
        """),
        record("view:django_http_slow_requests:ratio_rate5m", f"""
            1 - (
              sum {s.by('view')} (rate({LATENCY}_bucket{slow}[5m]))
              /
              sum {s.by('view')} (rate({LATENCY}_count{s()}[5m]))
            )
        """),
        # Per tier, not per view: a broken token, CSRF or client release turns many views 4xx at once,
        # while 404s on one detail view are ordinary. `or ... * 0`: a tier without any 4xx has a
        # share of 0, not no share.
        record("job:django_http_client_errors:ratio_rate5m", f"""
            (
              sum {s.by()} (rate({RESPONSES}{four}[5m]))
              or
              sum {s.by()} (rate({RESPONSES}{s()}[5m])) * 0
            )
            /
            sum {s.by()} (rate({RESPONSES}{s()}[5m]))
        """),
        # Failed statements and failed connections (django-prometheus counts them apart): a database
        # that refuses connections never reaches execute().
        record("alias:django_db_errors:rate5m", f"""
            sum {s.by('alias')} (rate({db_errors}[5m]))
        """),
    ]
    # The SLIs leave the probes out (slo.excluded_views). Availability counts as failed, besides
    # the 5xx Django answered, every request gunicorn lost: a WORKER TIMEOUT kill or an abnormal
    # worker exit (signal, OOM, crash) is a 502 the proxy gave and Django never counted. Each
    # counts once: a sync worker serves one request, an ASGI worker may lose more (a lower bound).
    users = s(*_not_probes(o))
    five_users, slow_users = s('status=~"5.."', *_not_probes(o)), s(f'le="{slow_le}"', *_not_probes(o))
    g = Selectors(cfg, "gunicorn")
    lost = g('reason=~"signal|crash"')
    for w in SLO_WINDOWS:
        def zero(expr, w=w):  # a term without series (no 5xx, no kill yet) counts 0, not "no ratio"
            return f"({expr} or sum {s.by()} (rate({RESPONSES}{users}[{w}])) * 0)"
        plus = "\n              + "  # one term a line, at the indentation of the expression below
        failed = plus.join(zero(e) for e in (
            f"sum {s.by()} (rate({RESPONSES}{five_users}[{w}]))",
            *(f"sum {s.by()} (rate({m}[{w}]))" for m in (f"gunicorn_worker_timeouts_total{g()}",
                                                           f"gunicorn_worker_exits_total{lost}"))))
        lost_only = plus.join(zero(f"sum {s.by()} (rate({m}[{w}]))")
                               for m in (f"gunicorn_worker_timeouts_total{g()}", f"gunicorn_worker_exits_total{lost}"))
        recording.append(record(f"job:django_http_server_errors:ratio_rate{w}", f"""
            (
              {failed}
            )
            /
            (
              sum {s.by()} (rate({RESPONSES}{users}[{w}]))
              + {lost_only}
            )
        """))
        recording.append(record(f"job:django_http_slow_requests:ratio_rate{w}", f"""
            1 - (
              sum {s.by()} (rate({LATENCY}_bucket{slow_users}[{w}]))
              /
              sum {s.by()} (rate({LATENCY}_count{users}[{w}]))
            )
        """))
    # Burn rate: how many times faster than "exactly the budget in 30 days" errors arrive.
    for w in SLO_WINDOWS:
        recording.append(record(
            f"job:django_availability_slo:burn_rate{w}",
            f"job:django_http_server_errors:ratio_rate{w}{s()} / (1 - {o['availability']})",
        ))
        recording.append(record(
            f"job:django_latency_slo:burn_rate{w}",
            f"job:django_http_slow_requests:ratio_rate{w}{s()} / (1 - {o['latency']})",
        ))
    return recording


def rules(cfg):
    """Return the django rule groups."""
    s, t, o = Selectors(cfg, "django"), cfg["thresholds"], cfg["slo"]
    busy_view = f"view:django_http_requests:rate5m{s()} > {t['view_min_requests_per_second']}"
    alerts = [
        alert(
            cfg, "DjangoSlowRequests",
            f"""
            view:django_http_slow_requests:ratio_rate5m{s()} > {t['slow_request_ratio']}
            and
            {busy_view}
            """,
            severity="warning", component="django",
            summary="View {{ $labels.view }} of {{ $labels.job }} answers slowly.",
            description="{{ $value | humanizePercentage }} of the requests to view {{ $labels.view }} of "
            "{{ $labels.job }} took longer than " f"{o['latency_seconds']:g}s over the last 5 minutes.",
        ),
        alert(
            cfg, "DjangoHighServerErrorRate",
            f"""
            view:django_http_server_errors:ratio_rate5m{s()} > {t['server_error_ratio']}
            and
            {busy_view}
            """,
            severity="warning", component="django",
            summary="View {{ $labels.view }} of {{ $labels.job }} fails with 5xx.",
            description="{{ $value | humanizePercentage }} of the responses of view {{ $labels.view }} of "
            "{{ $labels.job }} were 5xx over the last 5 minutes.",
        ),
        *_burn_alerts(cfg, s, "DjangoAvailabilityBudgetBurn", "availability", o["availability"],
                      "answered without a 5xx, a worker timeout or crash", "failed"),
        *_burn_alerts(cfg, s, "DjangoLatencyBudgetBurn", "latency", o["latency"],
                      f"faster than {o['latency_seconds']:g}s", f"took longer than {o['latency_seconds']:g}s"),
        alert(
            cfg, "DjangoEventLoopBlocked",
            f"""
            histogram_quantile({t['event_loop_lag_quantile_ratio']},
              sum {s.by('instance', 'le')} (rate(django_asgi_event_loop_lag_seconds_bucket{s()}[5m]))
            ) > {t['event_loop_lag_seconds']}
            """,
            severity="warning", component="django",
            summary="The ASGI event loop of {{ $labels.job }} is blocked.",
            description="The event loop of {{ $labels.job }} on {{ $labels.instance }} runs timers "
            "{{ $value | humanizeDuration }} late (p99 over 5 minutes): a synchronous call blocks it "
            "and stalls every request of that worker.",
        ),
        alert(
            cfg, "DjangoMigrationsUnapplied",
            f"max {s.by('instance', 'connection')} (django_migrations_unapplied_total{s()})"
            f" > {t['unapplied_migrations_count']}",
            severity="warning", component="django",
            summary="{{ $labels.job }} runs with unapplied migrations.",
            description='{{ $labels.job }} on {{ $labels.instance }} expects {{ printf "%.0f" $value }} '
            "migrations that database {{ $labels.connection }} does not have yet.",
        ),
        # A ticket: failing queries show up as 5xx and page through the availability budget; this
        # one names the cause.
        alert(
            cfg, "DjangoDatabaseErrors",
            f"alias:django_db_errors:rate5m{s()} > {t['database_errors_per_second']}",
            severity="warning", component="django",
            summary="{{ $labels.job }} gets errors from database {{ $labels.alias }}.",
            description='{{ $labels.job }} had {{ printf "%.2f" $value }} failed queries or connections per second '
            "on database {{ $labels.alias }} over the last 5 minutes.",
        ),
        # A ticket (DESIGN.md): clients, not our code, get it wrong, but a surge means a broken token,
        # CSRF set-up or client release. The volume guard keeps a handful of stray 404s quiet.
        alert(
            cfg, "DjangoHighClientErrorRate",
            f"""
            job:django_http_client_errors:ratio_rate5m{s()} > {t['client_error_ratio']}
            and
            job:django_http_requests:rate5m{s()} > {t['client_error_min_requests_per_second']}
            """,
            severity="warning", component="django",
            summary="{{ $labels.job }} answers many requests with 4xx.",
            description="{{ $value | humanizePercentage }} of the responses of {{ $labels.job }} were 4xx over "
            "the last 5 minutes.",
        ),
        # No for: the middleware and the ASGI guard swallow their own failures to keep the request
        # going, so each one is a request whose metrics or logs are wrong.
        alert(
            cfg, "DjangoInstrumentationErrors",
            f"sum {s.by('instance', 'stage')} (increase(django_instrumentation_errors_total{s()}[10m]))"
            f" > {t['instrumentation_errors_per_window']}",
            severity="warning", component="django",
            summary="The request instrumentation of {{ $labels.job }} fails.",
            description='The instrumentation of {{ $labels.job }} on {{ $labels.instance }} failed '
            '{{ printf "%.0f" $value }} times at stage {{ $labels.stage }} in the last 10 minutes; '
            "the requests went on, their metrics or log lines are missing.",
        ),
    ]
    return groups("django", _recording(cfg, s), alerts)

