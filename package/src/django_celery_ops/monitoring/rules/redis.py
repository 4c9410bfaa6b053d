"""Redis, the broker: reachable or not (seen by its exporter and by the Celery exporter), and its exporter."""

from ..lib import Selectors, alert, groups, human_duration


def rules(cfg):
    """Return the redis rule groups."""
    s, celery = Selectors(cfg, "redis"), Selectors(cfg, "celery")
    alerts = [
        # Redis does not answer: its exporter says so, or the Celery exporter could not reach the
        # broker. A dead Redis exporter is not Redis down (RedisExporterDown): its redis_up goes
        # stale, and the Celery exporter still watches the broker. No `up == 0` here, so the value
        # says nothing but "down"; the texts do not print it.
        alert(
            cfg, "RedisDown",
            f"""
            max {s.by('instance')} (redis_up{s()}) == 0
            or
            max {celery.by('instance')} (celery_exporter_broker_up{celery()}) == 0
            """,
            severity="critical", component="redis",
            summary="The Redis broker is unreachable.",
            description="{{ $labels.job }} on {{ $labels.instance }} has not reached Redis for "
            f"{human_duration(cfg['for']['RedisDown'])}: no task is queued or consumed; uploads are still "
            "accepted and wait in the outbox.",
        ),
        # Only the monitoring of Redis is blind: the broker may be fine (RedisDown still watches it
        # through the Celery exporter). A ticket, and it silences only its own PrometheusTargetDown.
        alert(
            cfg, "RedisExporterDown",
            f"up{s()} == 0",
            severity="warning", component="redis",
            summary="The Redis exporter {{ $labels.instance }} cannot be scraped.",
            description="Prometheus has not scraped the Redis exporter ({{ $labels.job }}) on "
            f"{{{{ $labels.instance }}}} for {human_duration(cfg['for']['RedisExporterDown'])}: Redis' own metrics "
            "(memory, clients) are missing; the broker itself is judged by RedisDown through the Celery exporter.",
        ),
    ]
    return groups("redis", [], alerts)
