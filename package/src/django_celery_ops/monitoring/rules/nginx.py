"""nginx, the proxy in front of the web tiers: what users got at the edge, and how long requests queued.

Two scrape jobs feed it: the nginx exporter (stub_status: nginx_up, connections) and the access-log
metrics (nginx_http_responses_total by upstream and exact status, the response-time histograms).
The queue time is the app's django_http_request_queue_seconds, filled from nginx's X-Request-Start.
"""

from ..lib import Selectors, alert, groups, human_duration, le, record

RESPONSES = "nginx_http_responses_total"
QUEUE = "django_http_request_queue_seconds"
UPSTREAM_ERRORS = "502|503|504"  # bad gateway, unavailable, gateway timeout: the upstream failed nginx
# nginx's own code: the client hung up before the answer. Recorded for the dashboard and the
# runbooks, no alert: users give up on slow answers, which DjangoSlowRequests and the latency
# budget already see (the abandoned view still runs to its end and is counted there); a 499 rise
# without slowness is a client's own timeout, a navigation or a release, which no operator fixes.
CLIENT_CLOSED = "499"


def _share(s, matcher):
    """Return the share of proxied responses (upstream != none) matching `matcher`; 0, not nothing, without any."""
    proxied = s('upstream!="none"')
    hits = s('upstream!="none"', matcher)
    return f"""
        (
          sum {s.by('upstream')} (rate({RESPONSES}{hits}[5m]))
          or
          sum {s.by('upstream')} (rate({RESPONSES}{proxied}[5m])) * 0
        )
        /
        sum {s.by('upstream')} (rate({RESPONSES}{proxied}[5m]))
    """


def rules(cfg):
    """Return the nginx rule groups."""
    t = cfg["thresholds"]
    exporter, log, web = Selectors(cfg, "nginx"), Selectors(cfg, "nginx_log"), Selectors(cfg, "django")
    queue_le, proxied = le(t["request_queue_seconds"]), log('upstream!="none"')
    recording = [
        # Answers nginx gave itself (413 at the edge, 408 to a slow client) have upstream="none".
        record("upstream:nginx_http_responses:rate5m",
               f"sum {log.by('upstream')} (rate({RESPONSES}{proxied}[5m]))"),
        record("upstream_status_class:nginx_http_responses:rate5m", f"""
            sum {log.by('upstream', 'status_class')} (
              label_replace(rate({RESPONSES}{log()}[5m]), "status_class", "${{1}}xx", "status", "([1-5]).*")
            )
        """),
        record("upstream:nginx_http_upstream_errors:ratio_rate5m", _share(log, f'status=~"{UPSTREAM_ERRORS}"')),
        record("upstream:nginx_http_client_closed:ratio_rate5m", _share(log, f'status="{CLIENT_CLOSED}"')),
        record("job:django_http_request_queue:rate5m", f"sum {web.by()} (rate({QUEUE}_count{web()}[5m]))"),
        record("job:django_http_request_queue_slow:ratio_rate5m", f"""
            1 - (
              sum {web.by()} (rate({QUEUE}_bucket{web(f'le="{queue_le}"')}[5m]))
              /
              sum {web.by()} (rate({QUEUE}_count{web()}[5m]))
            )
        """),
    ]
    alerts = [
        # Critical: when the tier behind nginx is gone, Django's own metrics are gone with it, so
        # the availability budget cannot burn; this is the page that sees what users get.
        alert(
            cfg, "NginxUpstreamErrors",
            f"""
            upstream:nginx_http_upstream_errors:ratio_rate5m{log()} > {t['upstream_error_ratio']}
            and
            upstream:nginx_http_responses:rate5m{log()} > {t['upstream_min_requests_per_second']}
            """,
            severity="critical", component="nginx",
            summary="nginx answers 502/503/504 for the {{ $labels.upstream }} tier.",
            description="{{ $value | humanizePercentage }} of the requests nginx proxied to the "
            "{{ $labels.upstream }} tier were answered 502, 503 or 504 over the last 5 minutes "
            f"(held for {human_duration(cfg['for']['NginxUpstreamErrors'])}): the tier is down, "
            "refuses connections, or answers slower than the proxy timeout.",
        ),
        # nginx_up is the exporter's verdict on stub_status. An exporter that cannot be scraped is
        # no verdict (nginx may serve on): PrometheusTargetDown tickets it, nothing pages twice.
        alert(
            cfg, "NginxDown",
            f"max {exporter.by('instance')} (nginx_up{exporter()}) == 0",
            severity="critical", component="nginx",
            summary="nginx behind {{ $labels.instance }} of {{ $labels.job }} is down.",
            description="The nginx exporter {{ $labels.instance }} of {{ $labels.job }} has not been able to read "
            f"nginx's stub_status for {human_duration(cfg['for']['NginxDown'])}: the proxy does not answer, "
            "users get connection errors.",
        ),
        # A ticket: waiting turns into slow requests, which page through the latency budget, and
        # GunicornRequestsQueued pages for the sync tier's backlog; this one measures the wait itself
        # (also on the ASGI tier, whose event loop accepts everything and queues inside).
        alert(
            cfg, "RequestQueueTimeHigh",
            f"""
            job:django_http_request_queue_slow:ratio_rate5m{web()} > {t['request_queue_slow_ratio']}
            and
            job:django_http_request_queue:rate5m{web()} > {t['request_queue_min_requests_per_second']}
            """,
            severity="warning", component="gunicorn",
            summary="Requests of {{ $labels.job }} wait for a free worker.",
            description="{{ $value | humanizePercentage }} of the requests of {{ $labels.job }} waited longer than "
            f"{t['request_queue_seconds']:g}s between nginx and a worker (X-Request-Start) over the last 5 minutes.",
        ),
    ]
    return groups("nginx", recording, alerts)
