"""Parse the proxy's X-Request-Start header into seconds spent queued before Django.

Proxies write it in different units: nginx `t=${msec}` (seconds with a fraction), Heroku and
others milliseconds, New Relic's docs microseconds; with or without the `t=` prefix. The unit
is told apart by magnitude (a timestamp of this century in seconds is ~1.7e9, in ms ~1.7e12,
in µs ~1.7e15). Anything that does not parse, or gives a negative or absurd wait, yields None:
no sample is better than a bogus one.
"""
from __future__ import annotations

import time

# Longer than any sane proxy timeout: a larger "queue time" means a wrong clock or unit.
MAX_QUEUE_SECONDS = 3600.0
_UNITS = ((1e11, 1.0), (1e14, 1e-3), (1e17, 1e-6))  # (values below this bound, to seconds)


def parse_request_start(header: str | None) -> float | None:
    """Return the Unix time in seconds the header names, or None when it is unusable."""
    if not header:
        return None
    raw = header.strip()
    if raw[:2].lower() == "t=":
        raw = raw[2:].strip()
    # ASCII digits only: str.isdigit() also takes "²" and other Unicode digits that float() refuses.
    if not raw or not raw.isascii() or not raw.replace(".", "", 1).isdigit():  # rejects signs, "nan", "1e9"
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    for bound, scale in _UNITS:
        if value < bound:
            return value * scale
    return None


def queue_seconds(header: str | None, now: float | None = None) -> float | None:
    """Seconds between the proxy stamping the request and now, or None (no header, bad value)."""
    started = parse_request_start(header)
    if started is None:
        return None
    waited = (time.time() if now is None else now) - started
    if waited < 0 or waited > MAX_QUEUE_SECONDS:  # a skewed clock or a wrong unit
        return None
    return waited


__all__ = ["MAX_QUEUE_SECONDS", "parse_request_start", "queue_seconds"]
