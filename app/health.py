"""Liveness and readiness probes."""
from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from kombu import Connection


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
        except Exception as exc:  # any failure means not ready; the name and class say which
            checks[name] = f"{type(exc).__name__}: {exc}"[:300]
            failing.append(name)
    status = 503 if failing else 200
    return JsonResponse({"status": "unavailable" if failing else "ok", "failing": failing, "checks": checks},
                        status=status)
