"""Start Prometheus, Alertmanager and the notification inbox for tests: the names of ops/drills/procs.py."""
from ops.drills.procs import (
    ALERTMANAGER_BIN,
    ALERTMANAGER_DIR,
    INBOX_SCRIPT,
    PROMETHEUS_BIN,
    PROMETHEUS_DIR,
    PROMETHEUS_JOBS,
    STARTUP_TIMEOUT_SECONDS,
    Service,
    flushes_of,
    free_port,
    load_module,
    start_alertmanager,
    start_inbox,
    start_prometheus,
    write_targets,
)
from ops.drills.procs import ROOT as REPO

__all__ = ["ALERTMANAGER_BIN", "ALERTMANAGER_DIR", "INBOX_SCRIPT", "PROMETHEUS_BIN", "PROMETHEUS_DIR",
           "PROMETHEUS_JOBS", "REPO", "STARTUP_TIMEOUT_SECONDS", "Service", "flushes_of", "free_port",
           "load_module", "start_alertmanager", "start_inbox", "start_prometheus", "write_targets"]
