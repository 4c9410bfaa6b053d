"""Gunicorn: worker saturation, the listen backlog, timeouts and abnormal worker exits."""

from ..lib import Selectors, alert, groups, human_duration, record


def rules(cfg):
    """Return the gunicorn rule groups."""
    s, t = Selectors(cfg, "gunicorn"), cfg["thresholds"]
    abnormal = s('reason=~"signal|crash"')
    recording = [
        record("instance:gunicorn_saturation:ratio", f"""
            sum {s.by('instance')} (gunicorn_requests_in_flight{s()})
            /
            max {s.by('instance')} (gunicorn_workers_capacity{s()})
        """),
    ]
    alerts = [
        # A ticket: when users really wait, GunicornRequestsQueued pages.
        alert(
            cfg, "GunicornWorkersSaturated",
            f"instance:gunicorn_saturation:ratio{s()} >= {t['gunicorn_saturation_ratio']}",
            severity="warning", component="gunicorn",
            summary="Gunicorn workers of {{ $labels.job }} are nearly all busy.",
            description="{{ $labels.job }} on {{ $labels.instance }} has {{ $value | humanizePercentage }} "
            f"of its worker slots busy for {human_duration(cfg['for']['GunicornWorkersSaturated'])}; "
            "new requests wait for a free worker.",
        ),
        # A non-empty accept queue: requests are waiting for a worker now, users feel it.
        alert(
            cfg, "GunicornRequestsQueued",
            f"max {s.by('instance')} (gunicorn_listen_backlog{s()}) > {t['listen_backlog_connections']}",
            severity="critical", component="gunicorn",
            summary="Requests of {{ $labels.job }} wait in the listen backlog.",
            description="{{ $value | humanize }} connections wait in the listen backlog of {{ $labels.job }} "
            "on {{ $labels.instance }} for a free gunicorn worker "
            f"(non-empty for {human_duration(cfg['for']['GunicornRequestsQueued'])}).",
        ),
        # No for: every timeout already cost a user a 502 after the full timeout; the 10m window
        # keeps the alert up long enough to be seen.
        alert(
            cfg, "GunicornWorkerTimeouts",
            f"sum {s.by('instance')} (increase(gunicorn_worker_timeouts_total{s()}[10m]))"
            f" > {t['worker_timeouts_per_window']}",
            severity="warning", component="gunicorn",
            summary="Gunicorn killed workers of {{ $labels.job }} for exceeding the timeout.",
            description='The gunicorn master of {{ $labels.job }} on {{ $labels.instance }} killed '
            '{{ printf "%.0f" $value }} workers for WORKER TIMEOUT in the last 10 minutes: each cost its request '
            "a 502 (on the ASGI tier every request in flight on that worker). A slow view, or a slow client "
            "sending its request to a tier without a buffering proxy.",
        ),
        # Recycling (max_requests), timeouts and shutdowns are expected exits; signals (OOM killer)
        # and crashes are not.
        alert(
            cfg, "GunicornWorkersCrashing",
            f"sum {s.by('instance', 'reason')} "
            f"(increase(gunicorn_worker_exits_total{abnormal}[15m]))"
            f" > {t['worker_crashes_per_window']}",
            severity="warning", component="gunicorn",
            summary="Gunicorn workers of {{ $labels.job }} die abnormally.",
            description='{{ printf "%.0f" $value }} gunicorn workers of {{ $labels.job }} on '
            "{{ $labels.instance }} exited by {{ $labels.reason }} in the last 15 minutes.",
        ),
    ]
    return groups("gunicorn", recording, alerts)
