"""Liveness and readiness probes, and which to use where (docs/oncall.md, "Probes").

/healthz (liveness): 200 while the process can serve; touches no dependency. For whatever
    restarts a process (Docker HEALTHCHECK, a kubelet livenessProbe, supervisord checks): a
    dependency outage must never restart healthy web workers.
/readyz (readiness): 503 only when this instance cannot do its work, i.e. the database does not
    answer (every request needs it, uploads are stored there first). A broker outage is reported
    (`"degraded": ["broker"]`) but keeps 200: uploads are still accepted into the outbox and
    the sweeper publishes them later, so a load balancer or readinessProbe must keep routing to
    the web tier. The broker's outage pages through RedisDown, not through the probe.

Both answer anyone (load balancers, kubelets): they name the failing dependency, never the
exception, whose text can carry host names, ports or credentials of a URL. The detail goes to
the server's log.
"""
import logging

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from kombu import Connection

log = logging.getLogger("app.health")


@never_cache
def healthz(request):
    """Answer while the process can serve; touches no dependency."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    with Connection(settings.CELERY_BROKER_URL, connect_timeout=2) as conn:
        conn.ensure_connection(max_retries=0, timeout=2)


# (name, check, required): a required dependency down makes the instance unready (503); an
# optional one only degrades it (200, named under "degraded").
CHECKS = (("database", _check_database, True), ("broker", _check_broker, False))


@never_cache
def readyz(request):
    """Answer 503 when the database is unreachable, else 200 ("degraded" naming a broker outage)."""
    checks, failing, degraded = {}, [], []
    for name, check, required in CHECKS:
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure counts; the log says why, the answer only which
            log.warning("readyz: %s unavailable: %s: %s", name, type(exc).__name__, exc)
            checks[name] = "unavailable"
            (failing if required else degraded).append(name)
    status = "unavailable" if failing else "degraded" if degraded else "ok"
    return JsonResponse({"status": status, "failing": failing, "degraded": degraded, "checks": checks},
                        status=503 if failing else 200)
