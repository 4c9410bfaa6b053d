"""Jobs: the transactional outbox, its sweeper, and jobs stuck past their deadline."""

from ..lib import Selectors, alert, groups, record


def rules(cfg):
    """Return the jobs rule groups."""
    s, t = Selectors(cfg, "jobs"), cfg["thresholds"]
    recording = [
        # One sweeper per deployment, but two exporters may serve its files: max, not sum.
        record("job:jobs_outbox_oldest_age_seconds:max", f"max {s.by()} (jobs_outbox_oldest_age_seconds{s()})"),
        record("job:jobs_sweeper_heartbeat_age_seconds:max",
               f"time() - max {s.by()} (jobs_sweeper_last_success_timestamp_seconds{s()})"),
        record("state:jobs_oldest_age_seconds:max", f"max {s.by('state')} (jobs_oldest_age_seconds{s()})"),
    ]
    alerts = [
        # Either accepted work waits unpublished, or nothing would publish it: the sweeper's last
        # completed sweep is old (dead, stuck, or failing every sweep). Its heartbeat gauge outlives
        # the process, so a dead sweeper shows as a growing age.
        alert(
            cfg, "JobsOutboxStalled",
            f"""
            job:jobs_outbox_oldest_age_seconds:max{s()} > {t['outbox_oldest_age_seconds']}
            or
            job:jobs_sweeper_heartbeat_age_seconds:max{s()} > {t['sweeper_heartbeat_age_seconds']}
            """,
            severity="critical", component="jobs",
            summary="Accepted jobs of {{ $labels.job }} are not reaching the broker.",
            description="The oldest unpublished job, or the last completed outbox sweep, of {{ $labels.job }} "
            "is {{ $value | humanizeDuration }} old: accepted uploads and exports wait and nothing publishes "
            "them.",
        ),
        # The deadline per state is the app's setting (JOBS_DEADLINE_<STATE>_SECONDS, exported by the
        # sweeper), not a threshold here: one source, and the drill stack shortens it by environment.
        alert(
            cfg, "JobsStuck",
            f"""
            state:jobs_oldest_age_seconds:max{s()}
            > {s.on('state')}
            max {s.by('state')} (jobs_deadline_seconds{s()})
            """,
            severity="warning", component="jobs",
            summary="Jobs of {{ $labels.job }} are stuck in state {{ $labels.state }}.",
            description="The oldest {{ $labels.state }} job of {{ $labels.job }} has been {{ $labels.state }} for "
            "{{ $value | humanizeDuration }}, past its deadline (JOBS_DEADLINE_{{ $labels.state | toUpper }}_SECONDS).",
        ),
    ]
    return groups("jobs", recording, alerts)
