"""Named API tokens stored as SHA-256 hashes, parsed from JOBS_API_TOKENS (no Django imports).

`JOBS_API_TOKENS=ci:<sha256 hex>,ops:<sha256 hex>`: a name may appear twice, which is how a
token rotates without downtime (add the new hash, move the clients, drop the old one). The
plaintext never reaches the server's configuration.
"""
from __future__ import annotations

import hashlib
import hmac
import re

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HEX = re.compile(r"^[0-9a-f]{64}$")
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def digest(token: str) -> str:
    """The hex SHA-256 of a plaintext token, as JOBS_API_TOKENS stores it."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def parse_tokens(value: str) -> tuple[tuple[str, str], ...]:
    """((name, sha256hex), ...) from `name:sha256hex,...`; ValueError names a bad entry."""
    entries = []
    for n, raw in enumerate(filter(None, (part.strip() for part in value.split(","))), 1):
        name, sep, hexdigest = raw.partition(":")
        name, hexdigest = name.strip(), hexdigest.strip().lower()
        if not sep or not _NAME.match(name) or not _HEX.match(hexdigest):
            raise ValueError(f"JOBS_API_TOKENS entry {n} must be name:sha256hex (name of 1-64 letters, digits, "
                             "'_', '.', '-'; 64 hex digits)")
        entries.append((name, hexdigest))
    return tuple(entries)


def owner_of(given: str, entries: tuple[tuple[str, str], ...]) -> str | None:
    """The name of the token whose hash matches, or None; every entry is compared (constant time)."""
    given_hash = digest(given).encode()
    found = None
    for name, hexdigest in entries:
        if hmac.compare_digest(given_hash, hexdigest.encode()) and found is None:
            found = name
    return found


def parse_rate(value: str) -> tuple[int, int] | None:
    """(requests, period seconds) from `120/m`; None for `0` or empty (no limit); ValueError otherwise."""
    if value.strip() in {"", "0", "off"}:
        return None
    match = _RATE.match(value)
    if not match or int(match.group(1)) < 1:
        raise ValueError("JOBS_API_RATE_LIMIT must look like 600/m (per s, m or h), or 0 for no limit")
    return int(match.group(1)), _PERIODS[match.group(2)]
