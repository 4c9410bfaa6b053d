"""Production gunicorn settings; every value can be overridden from the environment.

Plain settings only: the hooks come from the library (django_celery_ops.gunicorn_conf).
"""
import os

from django_celery_ops.env import env_int, env_str
# The library's hooks (metric storage, tier shape, worker exits, timeout evidence) and its
# escaping access-log logger: logger_class, on_starting, post_fork, child_exit, ...
from django_celery_ops.gunicorn_conf import *  # noqa: F401,F403

_var = env_str("OPS_VAR_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "var"))
_name = env_str("GUNICORN_NAME", "web")

proc_name = _name
bind = [env_str("GUNICORN_BIND", "127.0.0.1:8000")]
workers = env_int("GUNICORN_WORKERS", 4, minimum=1)
threads = env_int("GUNICORN_THREADS", 1, minimum=1)
# The sync worker whose protocol refusals (414, 431, CL+TE, bare LF) are JSON and counted like the
# app's (app/api/workers.py); with threads, gunicorn's gthread worker (its refusals stay uncounted).
worker_class = env_str("GUNICORN_WORKER_CLASS", "app.api.workers.SyncWorker" if threads == 1 else "gthread")
# A request running longer than this gets its worker killed ("WORKER TIMEOUT"); keep it above
# the slowest legitimate view and below the proxy's own timeout.
timeout = env_int("GUNICORN_TIMEOUT", 30, minimum=1)
graceful_timeout = env_int("GUNICORN_GRACEFUL_TIMEOUT", 30, minimum=1)
keepalive = env_int("GUNICORN_KEEPALIVE", 5, minimum=0)
backlog = env_int("GUNICORN_BACKLOG", 2048, minimum=1)
# Recycle workers to bound slow leaks; the jitter keeps them from restarting all at once.
max_requests = env_int("GUNICORN_MAX_REQUESTS", 1000, minimum=0)
max_requests_jitter = env_int("GUNICORN_MAX_REQUESTS_JITTER", 100, minimum=0)
# The heartbeat file is touched on every request: keep it on tmpfs, not a slow disk.
worker_tmp_dir = env_str("GUNICORN_WORKER_TMP_DIR", "/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
# gunicorn 27 opens a control socket under ~/.gunicorn by default: keep it under the run folder.
control_socket = env_str("GUNICORN_CONTROL_SOCKET", os.path.join(_var, "run", f"gunicorn-{_name}.ctl"))
control_socket_disable = control_socket == ""
pidfile = env_str("GUNICORN_PIDFILE", os.path.join(_var, "run", f"gunicorn-{_name}.pid"))

# Request limits (gunicorn answers 414 or 431 and never calls the app). The ASGI tier's guard
# reads the same variables with the same defaults (app/settings.py, HTTP_LIMIT_REQUEST_*).
limit_request_line = env_int("GUNICORN_LIMIT_REQUEST_LINE", 4094, minimum=64, maximum=8190)  # bytes; gunicorn's cap
limit_request_fields = env_int("GUNICORN_LIMIT_REQUEST_FIELDS", 100, minimum=4, maximum=32768)  # header count
limit_request_field_size = env_int("GUNICORN_LIMIT_REQUEST_FIELD_SIZE", 8190, minimum=64)  # bytes per header line

# Access-log fields (request line, headers) are escaped by the library's logger_class.
accesslog = env_str("GUNICORN_ACCESS_LOG", "-")
errorlog = env_str("GUNICORN_ERROR_LOG", "-")
loglevel = env_str("GUNICORN_LOG_LEVEL", "info")
# %(M)s is the request time in milliseconds; the request id ties a line to app logs.
access_log_format = env_str(
    "GUNICORN_ACCESS_LOG_FORMAT",
    '%(h)s "%(r)s" %(s)s %(B)s %(M)sms "%(a)s" rid=%({x-request-id}i)s xff=%({x-real-ip}i)s',
)
# Trust X-Forwarded-* and SCRIPT_NAME only from the configured proxies (none by default: a client
# on loopback sending SCRIPT_NAME made gunicorn answer 500). The app reads the same OBS_TRUSTED_PROXIES.
forwarded_allow_ips = env_str("GUNICORN_FORWARDED_ALLOW_IPS", env_str("OBS_TRUSTED_PROXIES", ""))
