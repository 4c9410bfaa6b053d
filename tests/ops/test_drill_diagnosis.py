"""The drills' runbook diagnosis (ops/drills/runner.py): which queries run, filled from the firing alert."""

from ops.drills.runner import CAUSES, EMPTY_OK, diagnosis_queries
from ops.drills.scenarios import DRILLS


def test_every_diagnosed_alert_is_one_its_drill_expects_and_has_diagnosis_queries():
    for drill, alerts in CAUSES.items():
        assert drill in DRILLS, drill
        for alert, cause in alerts.items():
            assert alert in DRILLS[drill].expected, (drill, alert)
            assert cause and diagnosis_queries(alert, {}), (drill, alert)


def test_placeholders_take_the_firing_alerts_labels_and_any_value_otherwise():
    queries = diagnosis_queries("CeleryQueueBacklog", {"queue_name": "default", "job": "celery-exporter"})
    assert queries and all("$" not in q for q in queries)
    assert any('queue_name=~"default"' in q for q in queries)
    assert any('hostname=~".+"' in q for q in queries)  # the alert has no hostname label


def test_empty_ok_names_real_queries_with_a_reason():
    for alert, allowed in EMPTY_OK.items():
        queries = diagnosis_queries(alert, {})
        for fragment, why in allowed.items():
            assert any(fragment in q for q in queries), (alert, fragment)
            assert len(why) > 15, (alert, fragment)


def test_the_redis_exporter_drill_expects_only_its_alert_and_tolerates_only_its_target():
    drill = DRILLS["redis-exporter-down"]
    assert drill.expected == ["RedisExporterDown"] and set(drill.tolerated) == {"PrometheusTargetDown"}
    assert "RedisDown" not in drill.expected and drill.check is not None


def test_the_graceful_restart_drill_expects_nothing():
    drill = DRILLS["worker-graceful-restart"]
    assert drill.expected == [] and not drill.tolerated and drill.hold > 0 and drill.check is not None
