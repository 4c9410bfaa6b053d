"""Start real processes for tests (Redis, gunicorn, Celery): the names of ops/drills/procs.py, the one process helper."""
from ops.drills.procs import (
    HOST,
    ROOT,
    VENV_BIN,
    Proc,
    app_env,
    free_port,
    migrate,
    start_celery_worker,
    start_gunicorn,
    start_redis,
    wait_for,
)

__all__ = ["HOST", "ROOT", "VENV_BIN", "Proc", "app_env", "free_port", "migrate", "start_celery_worker",
           "start_gunicorn", "start_redis", "wait_for"]
