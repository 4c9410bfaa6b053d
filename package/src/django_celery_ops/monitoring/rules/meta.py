"""Meta: the monitoring itself (scrape targets, rule evaluation, notifications) and the heartbeat."""

from ..lib import Selectors, alert, groups, human_duration

# Which selector watches the scrape targets of each component (meta stands for Prometheus itself).
_TARGET_SELECTORS = {"gunicorn": "gunicorn", "django": "django", "celery": "celery", "jobs": "jobs",
                     "redis": "redis", "nginx": "nginx", "meta": "prometheus"}


def _target_selectors(cfg):
    """Return the distinct selectors of the configured components' scrape targets."""
    names = [_TARGET_SELECTORS[c] for c in cfg["components"]] + ["prometheus", "alertmanager"]
    names += ["nginx_log"] if "nginx" in cfg["components"] else []  # the proxy's second target: its access log
    selectors = {}
    for name in names:
        s = Selectors(cfg, name)
        selectors.setdefault(s.text, s)
    return list(selectors.values())


def _targets_down(cfg):
    """Return `up{...} == 0` for each distinct selector of the configured components, or-ed."""
    return "\nor\n".join(f"up{s()} == 0" for s in _target_selectors(cfg))


def _scrapes_slow(cfg):
    """Return, per target selector, the slowest scrape of 5 minutes over its timeout, above the threshold.

    scrape_timeout_seconds exists only with Prometheus' --enable-feature=extra-scrape-metrics; without
    it the configured thresholds.scrape_timeout_seconds stands in (the inner `or`).
    """
    t = cfg["thresholds"]

    def ratio(s):
        slowest = f"max_over_time(scrape_duration_seconds{s()}[5m])"
        return (f"({slowest} / scrape_timeout_seconds{s()} or {slowest} / {t['scrape_timeout_seconds']})"
                f" > {t['scrape_duration_timeout_ratio']}")

    return "\nor\n".join(ratio(s) for s in _target_selectors(cfg))


def rules(cfg):
    """Return the meta rule groups."""
    t, prom, am = cfg["thresholds"], Selectors(cfg, "prometheus"), Selectors(cfg, "alertmanager")
    alerts = [
        alert(
            cfg, "PrometheusTargetDown",
            _targets_down(cfg),
            severity="warning", component="prometheus",
            summary="Scrape target {{ $labels.instance }} of {{ $labels.job }} is down.",
            description="Prometheus has failed to scrape {{ $labels.job }} on {{ $labels.instance }} "
            f"for {human_duration(cfg['for']['PrometheusTargetDown'])}; the alerts on its metrics cannot fire.",
        ),
        # Warning: the target still answers, but a little more load and its scrapes time out (up = 0).
        alert(
            cfg, "PrometheusTargetScrapeSlow",
            _scrapes_slow(cfg),
            severity="warning", component="prometheus",
            summary="Scrapes of {{ $labels.instance }} of {{ $labels.job }} near their timeout.",
            description="The slowest scrape of {{ $labels.job }} on {{ $labels.instance }} in 5 minutes took "
            "{{ $value | humanizePercentage }} of the scrape timeout, for "
            f"{human_duration(cfg['for']['PrometheusTargetScrapeSlow'])}; past 100 % the scrape fails and the "
            "target is down.",
        ),
        # Critical: a failing rule is an alert that silently cannot fire.
        alert(
            cfg, "PrometheusRuleEvaluationFailures",
            f"sum {prom.by('instance', 'rule_group')} "
            f"(increase(prometheus_rule_evaluation_failures_total{prom()}[5m]))"
            f" > {t['rule_failures_per_window']}",
            severity="critical", component="prometheus",
            summary="Prometheus fails to evaluate rules.",
            description='Prometheus {{ $labels.instance }} failed {{ printf "%.0f" $value }} evaluations of '
            "rule group {{ $labels.rule_group }} in the last 5 minutes.",
        ),
        alert(
            cfg, "AlertmanagerNotificationsFailing",
            f"""
            sum {am.by('instance', 'integration')} (rate(alertmanager_notifications_failed_total{am()}[5m]))
            /
            sum {am.by('instance', 'integration')} (rate(alertmanager_notifications_total{am()}[5m]))
            > {t['notification_failure_ratio']}
            """,
            severity="critical", component="alertmanager",
            summary="Alertmanager fails to send {{ $labels.integration }} notifications.",
            description="{{ $value | humanizePercentage }} of the {{ $labels.integration }} notifications of "
            "Alertmanager {{ $labels.instance }} failed over the last 5 minutes.",
        ),
        alert(
            cfg, "Watchdog",
            "vector(1)",
            severity="none", component="meta",
            summary="Alerting pipeline heartbeat.",
            description="Always firing: proves that Prometheus evaluates rules and Alertmanager delivers "
            "notifications. The deadman receiver must hear from it every few minutes.",
        ),
    ]
    return groups("meta", [], alerts)
