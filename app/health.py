"""Liveness and readiness probes.

/readyz answers anyone (load balancers, kubelets): it names the failing dependency, never the
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


@never_cache
def readyz(request):
    """Answer 200 when the database and the broker are reachable, else 503 naming the failure."""
    checks, failing = {}, []
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; the log says why, the answer only which
            log.warning("readyz: %s unavailable: %s: %s", name, type(exc).__name__, exc)
            checks[name] = "unavailable"
            failing.append(name)
    status = 503 if failing else 200
    return JsonResponse({"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks},
                        status=status)
