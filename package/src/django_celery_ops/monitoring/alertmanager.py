"""The Alertmanager routing snippet: the route tree and inhibition rules for the generated alerts.

Paste `route` as the root route of alertmanager.yml, or, in a shared Alertmanager, as one child
route of it (it then carries `matchers` from common_selector), and append `inhibit_rules`. The
receivers named in `alertmanager:` of the config must exist there.
"""

from .lib import Selectors, label_names, matchers

__all__ = ["snippet"]


def _matchers(text):
    return [f'{name}{op}"{value}"' for name, op, value in matchers(text)]


def snippet(cfg):
    """Return {"route": ..., "inhibit_rules": [...]} for the config."""
    am, common = cfg["alertmanager"], _matchers(cfg["common_selector"])
    # Labels absent on both sides count as equal; the scope labels (cluster, namespace) keep an
    # inhibition inside one deployment.
    scope = [label for label in [*cfg["group_by"], *label_names(cfg["common_selector"])] if label != "job"]
    scope = list(dict.fromkeys(scope))

    def child(receiver, matcher, wait, interval, repeat):
        return {"receiver": receiver, "matchers": [matcher], "group_wait": wait, "group_interval": interval,
                "repeat_interval": repeat}

    route = {"receiver": am["ticket_receiver"]}  # anything unmatched (a new severity) opens a ticket
    if common:
        route["matchers"] = common
    route |= {
        "group_by": list(am["group_by"]),
        "group_wait": "30s",  # collect the alerts one incident raises before the first notification
        "group_interval": "5m",  # then at most one update per group every 5 minutes
        "repeat_interval": "4h",  # a still-firing alert is re-sent this often
        "routes": [
            # The heartbeat must arrive regularly; an external checker alarms on silence.
            child(am["heartbeat_receiver"], 'alertname="Watchdog"', "0s", "1m", "5m"),
            child(am["page_receiver"], 'severity="critical"', "30s", "5m", "4h"),
            child(am["ticket_receiver"], 'severity="warning"', "2m", "10m", "24h"),
        ],
    }

    def inhibit(source, target, equal=()):
        rule = {"source_matchers": [*source, *common], "target_matchers": [*target, *common]}
        equal = list(dict.fromkeys([*equal, *scope])) if equal or scope else []
        if equal:
            rule["equal"] = equal
        return rule

    celery_exporter = _matchers(Selectors(cfg, "celery").own)
    inhibit_rules = [
        # A page silences the ticket of the same alert on the same thing (the SLO burn alerts).
        inhibit(['severity="critical"'], ['severity="warning"'],
                ["alertname", "job", "instance", "view", "queue_name", "name", "hostname"]),
        # The Celery exporter cannot reach its broker: every Celery and jobs symptom it reports follows
        # from that. `equal: job` ties the silence to that exporter's own alerts (another Celery app
        # in the same Prometheus keeps paging), and RedisDown seen by the Redis exporter alone
        # (job of the redis selector) silences nothing: a dead Redis exporter never does.
        inhibit(['alertname="RedisDown"', *celery_exporter], ['component=~"celery|jobs"'], ["job"]),
        # RedisExporterDown already says that the redis exporter target is unreachable.
        inhibit(['alertname="RedisExporterDown"'], ['alertname="PrometheusTargetDown"'], ["job", "instance"]),
        # Requests queued (page) make the saturation ticket redundant; never the reverse.
        inhibit(['alertname="GunicornRequestsQueued"'], ['alertname="GunicornWorkersSaturated"'], ["job", "instance"]),
        # A queue without consumers also backs up; the page names the cause.
        inhibit(['alertname="CeleryQueueNoConsumers"'], ['alertname="CeleryQueueBacklog"'], ["job", "queue_name"]),
        # A web target Prometheus cannot scrape: its own gunicorn/django alerts are about stale data.
        inhibit(['alertname="PrometheusTargetDown"'], ['component=~"gunicorn|django"'], ["job", "instance"]),
        # The Celery exporter cannot be scraped: every Celery and jobs alert comes from it.
        inhibit(['alertname="PrometheusTargetDown"', *celery_exporter], ['component=~"celery|jobs"'], ["job"]),
    ]
    return {"route": route, "inhibit_rules": inhibit_rules}
