"""Every alert threshold and SLO target of the stack, in one place.

generate.py reads these by name; no rule carries a bare number of its own. Ratios are 0..1,
durations in seconds. Change a value here, run `python ops/prometheus/generate.py`, commit both.
"""

# Links added to every alert (overridable at generation time by RUNBOOK_BASE_URL / GRAFANA_BASE_URL).
runbook_base_url = "https://github.com/django-celery-ops/django-celery-ops/blob/main/runbooks"
grafana_base_url = "http://localhost:3000"

# --- SLOs of the web tiers (per job, over a 30-day window) -------------------------------
availability_slo_ratio = 0.999  # share of requests answered without a 5xx
latency_slo_ratio = 0.99  # share of requests answered faster than slow_request_seconds
slow_request_seconds = 1.0  # a request slower than this is slow; must be a histogram bucket (le="1.0")

# Multiwindow multi-burn-rate factors (Google SRE workbook, "Alerting on SLOs", table 5-8).
page_1h_burn_rate = 14.4  # 2% of the 30-day budget spent in 1 hour (checked with 1h and 5m windows)
page_6h_burn_rate = 6.0  # 5% of the budget spent in 6 hours (6h and 30m windows)
ticket_1d_burn_rate = 3.0  # 10% of the budget spent in 1 day (1d and 2h windows)
ticket_3d_burn_rate = 1.0  # 10% of the budget spent in 3 days (3d and 6h windows)

# --- Gunicorn ------------------------------------------------------------------------------
gunicorn_saturation_ratio = 0.9  # busy share of worker slots (requests in flight / capacity)
listen_backlog_connections = 0  # connections waiting in the accept queue; any sustained wait hurts users
worker_timeouts_per_window = 0  # WORKER TIMEOUT kills tolerated per 10 minutes (each one is a 502 for a user)
worker_crashes_per_window = 0  # abnormal worker exits (signal, OOM, crash) tolerated per 15 minutes

# --- Django ----------------------------------------------------------------------------------
slow_request_ratio = 0.10  # share of a view's requests slower than slow_request_seconds
server_error_ratio = 0.05  # share of a view's responses that are 5xx
view_min_requests_per_second = 0.05  # views quieter than 3 requests a minute are too noisy to judge
event_loop_lag_quantile_ratio = 0.99  # which quantile of the ASGI event-loop lag is watched
event_loop_lag_seconds = 0.25  # that quantile above a quarter second: the loop is blocked, all requests stall
unapplied_migrations_count = 0  # migrations the running code expects but the database lacks
database_errors_per_second = 0.05  # failed queries or connections per second of a tier (3 a minute)
client_error_ratio = 0.25  # share of a tier's responses that are 4xx
client_error_min_requests_per_second = 0.2  # tiers quieter than 12 requests a minute are too noisy to judge
instrumentation_errors_per_window = 0  # middleware / ASGI guard failures tolerated per 10 minutes

# --- Celery ----------------------------------------------------------------------------------
queue_drain_budget_seconds = 600  # a queue must be drainable within 10 minutes at the current consume rate
queue_backlog_min_messages = 50  # queues shorter than this are never a backlog
queue_wait_seconds = 60  # mean publish-to-start wait of a queue's tasks
celery_saturation_ratio = 0.9  # busy share of a worker's pool (active tasks / concurrency)
task_failure_ratio = 0.10  # share of a task's completions that failed
task_retry_ratio = 0.5  # share of a task's outcomes that are retries; above 0.5 retries outnumber completions
time_limit_hits_per_window = 0  # soft or hard time-limit hits tolerated per 10 minutes

# --- Jobs (outbox and sweeper; the per-state deadlines are app settings, JOBS_DEADLINE_*_SECONDS) ---
outbox_oldest_age_seconds = 120  # an accepted job still unpublished after 2 minutes: the outbox is not drained
sweeper_heartbeat_age_seconds = 60  # no completed sweep for a minute (12 sweeps at the 5 s default interval)

# --- Meta (Prometheus, Alertmanager) -------------------------------------------------------
rule_failures_per_window = 0  # rule evaluation failures tolerated per 5 minutes
notification_failure_ratio = 0.01  # share of an integration's notifications that failed
