"""Make request-controlled text safe for one log line: no CR, LF or other control character.

A request path is percent-decoded before Django sees it, so `/x%0d%0aFAKE ...` reaches a log
call as a real line break and forges a line of its own (log injection). Every field a log line
takes from a request goes through `escape()` (plain text) or `logfmt()` (a key=value field).
Escapes are backslash sequences, so the original is recoverable and a backslash is doubled.
"""
from __future__ import annotations

__all__ = ["escape", "logfmt"]

_NAMED = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 controls, DEL, C1 controls (NEL, U+0085, is a line break to some readers) and the Unicode
# line and paragraph separators, which str.splitlines() and many log viewers break on.
_TABLE = {
    **{c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))},
    0x2028: "\\u2028", 0x2029: "\\u2029",
    **{ord(k): v for k, v in _NAMED.items()},
}
_QUOTE_IF = frozenset(' "=')


def escape(value) -> str:
    """Return str(value) with backslashes and every control or line-break character escaped."""
    return str(value).translate(_TABLE)


def logfmt(value) -> str:
    """Return a logfmt field value: escaped, and quoted when empty or holding a space, quote or '='."""
    text = escape(value)
    if not text or any(c in _QUOTE_IF for c in text):
        return '"' + text.replace('"', '\\"') + '"'
    return text
