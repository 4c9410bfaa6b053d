"""gunicorn hooks as a config module: ``gunicorn -c python:django_celery_ops.gunicorn_conf proj.wsgi``.

It sets only the hooks and the escaping access-log logger; every other setting keeps gunicorn's
default or comes from the command line and GUNICORN_CMD_ARGS. A project with its own config file
imports the hooks instead::

    from django_celery_ops.gunicorn_conf import *  # noqa: F401,F403  (hooks and logger_class)

and then sets its own values (a hook of its own must call ours). Metric files go to
PROMETHEUS_MULTIPROC_DIR, which must be set for the web tier (a system check says so).
"""
from . import gunicorn as _hooks

logger_class = _hooks.Logger
on_starting = _hooks.on_starting
when_ready = _hooks.when_ready
nworkers_changed = _hooks.nworkers_changed
on_exit = _hooks.on_exit
post_fork = _hooks.post_fork
post_worker_init = _hooks.post_worker_init
worker_exit = _hooks.worker_exit
child_exit = _hooks.child_exit

__all__ = ["logger_class", "on_starting", "when_ready", "nworkers_changed", "on_exit", "post_fork",
           "post_worker_init", "worker_exit", "child_exit"]
