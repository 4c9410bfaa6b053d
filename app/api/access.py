"""Who is calling (a named API token) and whether they are over their rate (429).

The token names the owner of the jobs it creates; with JOBS_API_AUTH=off there is no owner
and every job is visible (local use only). The rate window lives in the "api" cache (Redis,
shared by every worker of both tiers); when that cache is down the limit fails open, and
the failure is counted in django_instrumentation_errors_total{stage="rate_limit"}.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches

from app.api import tokens
from app.errors import error
from django_celery_ops.middleware import instrumentation_failed

ANONYMOUS = None  # tokens off: no owner, no filtering


@dataclass
class Caller:
    owner: str | None


def authenticate(request):
    """Return a Caller, or the 401 answer."""
    if settings.JOBS_API_AUTH == "off":
        return Caller(ANONYMOUS)
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        response = error(401, "an API token is required: send Authorization: Bearer <token>",
                         "Authorization", "bearer_token")
    else:
        owner = tokens.owner_of(given.strip(), settings.JOBS_API_TOKENS)
        if owner is not None:
            return Caller(owner)
        response = error(401, "the API token is not valid", "Authorization", "known_token")
    response["WWW-Authenticate"] = 'Bearer realm="jobs"'
    return response


def over_rate(caller: Caller):
    """Count the request in the caller's window; return the 429 answer when over the limit, else None."""
    rate = settings.JOBS_API_RATE
    if rate is None or caller.owner is None:
        return None
    allowed, period = rate
    now = time.time()
    window = int(now // period)
    key = f"rate:{caller.owner}:{period}:{window}"
    try:
        cache = caches["api"]
        cache.add(key, 0, timeout=period + 1)
        used = cache.incr(key)
    except Exception:  # the cache is down or refused: fail open, counted and logged
        instrumentation_failed("rate_limit")
        return None
    if used <= allowed:
        return None
    retry_after = max(1, math.ceil((window + 1) * period - now))
    response = error(429, f"rate limit of {allowed} requests per {period} s exceeded for token {caller.owner!r}",
                     "Authorization", "rate_limit", retry_after_seconds=retry_after)
    response["Retry-After"] = str(retry_after)
    return response
