"""Redis, the broker: the exporter's view, the exporter itself, and the Celery exporter's view."""

from ..lib import Selectors, alert, groups, human_duration


def rules(cfg):
    """Return the redis rule groups."""
    s, celery = Selectors(cfg, "redis"), Selectors(cfg, "celery")
    alerts = [
        # Either the exporter says Redis does not answer, or the exporter itself is gone, or the
        # Celery exporter cannot reach the broker.
        alert(
            cfg, "RedisDown",
            f"""
            max {s.by('instance')} (redis_up{s()}) == 0
            or
            up{s()} == 0
            or
            max {celery.by('instance')} (celery_exporter_broker_up{celery()}) == 0
            """,
            severity="critical", component="redis",
            summary="The Redis broker is unreachable.",
            description="{{ $labels.job }} on {{ $labels.instance }} cannot reach Redis "
            f"(up = {{{{ $value }}}} for {human_duration(cfg['for']['RedisDown'])}); no task is queued or consumed.",
        ),
    ]
    return groups("redis", [], alerts)
