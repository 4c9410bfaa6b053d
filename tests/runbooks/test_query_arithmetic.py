"""Runbook queries that combine series of several jobs give the right number (promtool, no server).

The query is taken from the committed runbook, as on-call pastes it, and evaluated by promtool on
series shaped like the stack's: tasks published by the web tiers and the workers, started under
the Celery exporter.
"""

import subprocess

import yaml

from tests.support.runbooks import code_blocks, load_runbooks, substitute


def _backlog_growth_query():
    diagnosis = load_runbooks()["CeleryQueueBacklog"].split("## Diagnosis", 1)[1].split("## Mitigation", 1)[0]
    [query] = [q.strip() for q in code_blocks(diagnosis, "promql")
               if "celery_task_sent_total" in q and "celery_task_started_total" in q]
    return substitute(query, {"QUEUE": "imports"})


def _promtool(tmp_path, series, expr, expected):
    test = {"evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series],
        "promql_expr_test": [{"expr": expr, "eval_time": "10m", "exp_samples": expected}],
    }]}
    path = tmp_path / "arithmetic.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    return subprocess.run(["promtool", "test", "rules", str(path)], capture_output=True, text=True, timeout=60)


def test_backlog_growth_is_published_minus_started_per_queue_across_jobs(tmp_path):
    """3/s uploads published by the WSGI tier + 1/s retries by the workers - 2.5/s started = 1.5/s growth."""
    expr = _backlog_growth_query()
    assert "by (queue_name)" in expr and "by (job" not in expr, expr
    series = [
        ('celery_task_sent_total{job="django-wsgi", instance="127.0.0.1:9100", name="jobs.process_import", '
         'queue_name="imports", hostname="web-1"}', "0+180x10"),
        ('celery_task_sent_total{job="celery-exporter", instance="127.0.0.1:9808", name="jobs.process_import", '
         'queue_name="imports", hostname="worker-1"}', "0+60x10"),
        ('celery_task_started_total{job="celery-exporter", instance="127.0.0.1:9808", name="jobs.process_import", '
         'queue_name="imports", hostname="worker-1"}', "0+150x10"),
        # another queue, balanced: not part of the answer for $QUEUE=imports
        ('celery_task_sent_total{job="django-asgi", instance="127.0.0.1:9101", name="jobs.process_export", '
         'queue_name="exports", hostname="web-1"}', "0+60x10"),
        ('celery_task_started_total{job="celery-exporter", instance="127.0.0.1:9808", name="jobs.process_export", '
         'queue_name="exports", hostname="worker-1"}', "0+60x10"),
    ]
    result = _promtool(tmp_path, series, expr, [{"labels": '{queue_name="imports"}', "value": 1.5}])
    assert result.returncode == 0, result.stdout + result.stderr
