"""One HTTP strictness on both tiers, applied before Django reads anything.

gunicorn's sync (WSGI) tier refuses long request lines, too many or too long header fields and
Content-Length with Transfer-Encoding itself. The ASGI tier runs uvicorn on h11, which has no
header-count option, lets Transfer-Encoding win over Content-Length, and Django's ASGIHandler
reads the whole body before any middleware. So `asgi()` wraps Django with the same limits
(gunicorn's own setting names, app/settings.py "API access"), and both wrappers answer 413 on
a declared Content-Length above the limit before a byte of the body is read, cap a body sent
without a length (chunked) while it streams, and drop X-Forwarded-* headers that do not come
from DJANGO_CELERY_OPS["TRUSTED_PROXIES"] (env OBS_TRUSTED_PROXIES). A refusal is a JSON body naming the field and the rule, counted in
django_http_responses_total_by_status_view_method (view "<unnamed view>"). A failure inside
the guard itself is counted in django_instrumentation_errors_total{stage="guard"}, and the
request goes on.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import tempfile
import time
from pathlib import Path

from django.conf import settings

from django_celery_ops import conf
from django_celery_ops.middleware import count_refused, instrumentation_failed

# Headers only a trusted proxy may set: the client's address and scheme, and X-Request-Start (a
# forged start would fill the queue-time histogram and fire RequestQueueTimeHigh).
_FORWARDED = (b"x-forwarded-", b"forwarded", b"x-real-ip", b"x-request-start")
_FORWARDED_ENV = tuple("HTTP_" + p.decode().upper().replace("-", "_") for p in _FORWARDED)  # the same, as WSGI keys
_IMPORT_SUFFIX = "/api/imports/"
_CHUNK = 64 * 1024


class Refusal(Exception):
    def __init__(self, status: int, message: str, field: str, rule: str, **extra):
        super().__init__(message)
        self.status = status
        self.body = json.dumps({"error": message, "field": field, "rule": rule, **extra}).encode()


def body_limit(path: str) -> int:
    """Largest body accepted for a path: an upload plus its multipart envelope, else a form/JSON body."""
    if path.endswith(_IMPORT_SUFFIX):
        return settings.JOBS_MAX_UPLOAD_BYTES + settings.JOBS_API_MULTIPART_OVERHEAD_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def _too_large(size: int | str, limit: int) -> Refusal:
    return Refusal(413, f"the request body is {size} bytes, the limit is {limit}", "Content-Length", "max_bytes",
                   limit=limit)


def content_length(values: list[str], chunked: bool) -> int | None:
    """The declared length, or None; Refusal for a malformed, repeated-and-different, or CL+TE request."""
    if not values:
        return None
    if chunked:
        raise Refusal(400, "Content-Length together with Transfer-Encoding is refused (request smuggling)",
                      "Transfer-Encoding", "content_length_with_transfer_encoding")
    distinct = {v.strip() for v in ",".join(values).split(",")}
    if len(distinct) != 1 or not next(iter(distinct)).isascii() or not next(iter(distinct)).isdigit():
        raise Refusal(400, "Content-Length must be one decimal number", "Content-Length", "integer")
    return int(distinct.pop())


def trusted(peer: str | None) -> bool:
    """True when the peer address is one of the TRUSTED_PROXIES (addresses or networks)."""
    proxies = conf.get("TRUSTED_PROXIES")
    if not peer or not proxies:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in net for net in _networks(proxies))


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple) -> tuple:
    """The TRUSTED_PROXIES networks, parsed once per setting value instead of on every request."""
    networks = []
    for net in proxies:
        try:
            networks.append(ipaddress.ip_network(net, strict=False))
        except ValueError:
            pass  # as before: an entry that is no address or network matches nothing
    return tuple(networks)


def _spool():
    Path(settings.FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True)
    # Unnamed (unlinked) file: nothing stays in the folder, whatever happens to the worker.
    return tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE,
                                         dir=settings.FILE_UPLOAD_TEMP_DIR)


# --- ASGI ------------------------------------------------------------------------------------

def _check_head(scope) -> list:
    """Refusal for a head the WSGI tier would refuse; else the headers to pass on."""
    line = len(scope.get("method", "")) + len(scope.get("raw_path") or scope["path"].encode())
    line += len(scope.get("query_string", b"")) + 10  # spaces, "?", " HTTP/1.1"
    if line > settings.HTTP_LIMIT_REQUEST_LINE:
        raise Refusal(414, f"the request line is {line} bytes, the limit is {settings.HTTP_LIMIT_REQUEST_LINE}",
                      "request-line", "max_bytes", limit=settings.HTTP_LIMIT_REQUEST_LINE)
    headers = scope["headers"]
    if len(headers) > settings.HTTP_LIMIT_REQUEST_FIELDS:
        raise Refusal(431, f"the request has {len(headers)} header fields, the limit is "
                           f"{settings.HTTP_LIMIT_REQUEST_FIELDS}", "headers", "max_count",
                      limit=settings.HTTP_LIMIT_REQUEST_FIELDS)
    keep = []
    client = scope.get("client")
    from_proxy = trusted(client[0] if client else None)
    for name, value in headers:
        if len(name) + len(value) + 2 > settings.HTTP_LIMIT_REQUEST_FIELD_SIZE:
            shown = name[:64].decode("latin-1")
            raise Refusal(431, f"the header field {shown!r} is {len(name) + len(value) + 2} bytes, the limit is "
                               f"{settings.HTTP_LIMIT_REQUEST_FIELD_SIZE}", shown, "max_bytes",
                          limit=settings.HTTP_LIMIT_REQUEST_FIELD_SIZE)
        if b"\n" in value or b"\r" in value or b"\n" in name:
            raise Refusal(400, "a header field holds a line break", name[:64].decode("latin-1"), "no_line_breaks")
        if not from_proxy and name.lower().startswith(_FORWARDED):
            continue
        keep.append((name, value))
    return keep


class _Replay:
    """The buffered body, handed to Django as ASGI messages; then the real channel (disconnect)."""

    def __init__(self, body, receive):
        self.body, self.receive, self.done = body, receive, False

    async def __call__(self):
        if self.done:
            return await self.receive()
        chunk = self.body.read(_CHUNK)
        more = len(chunk) == _CHUNK
        if not more:
            self.done = True
            self.body.close()
        return {"type": "http.request", "body": chunk, "more_body": more}


async def _buffer(receive, limit: int):
    """Read a body without a length, at most `limit` bytes (Refusal past it); None if the client left."""
    body, size = _spool(), 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            body.close()
            return None, 0
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            body.close()
            raise _too_large(f"more than {limit}", limit)
        body.write(chunk)
        if not message.get("more_body", False):
            body.seek(0)
            return body, size


def asgi(app):
    """Wrap a Django ASGI application with the guard."""

    async def guarded(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        started = time.perf_counter()
        try:
            try:
                headers = _check_head(scope)
                names = [n.lower() for n, _ in headers]
                chunked = b"transfer-encoding" in names
                lengths = [v.decode("latin-1") for n, v in headers if n.lower() == b"content-length"]
                length = content_length(lengths, chunked)
                limit = body_limit(scope["path"])
                if length is not None and length > limit:
                    raise _too_large(length, limit)
                if chunked:
                    body, size = await _buffer(receive, limit)
                    if body is None:
                        return
                    headers = [(n, v) for n, v in headers if n.lower() != b"transfer-encoding"]
                    headers.append((b"content-length", str(size).encode()))
                    receive = _Replay(body, receive)
                scope = {**scope, "headers": headers}
            except Refusal:
                raise
            except Exception:
                instrumentation_failed("guard")
        except Refusal as refusal:
            await _refuse(send, refusal, scope.get("method", ""), started)
            return
        return await app(scope, receive, send)

    return guarded


async def _refuse(send, refusal: Refusal, method: str, started: float) -> None:
    await send({"type": "http.response.start", "status": refusal.status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(refusal.body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": refusal.body})
    _count(refusal.status, method, started)


def _count(status: int, method: str, started: float) -> None:
    try:
        count_refused(status, method, time.perf_counter() - started)
    except Exception:
        instrumentation_failed("guard")


# --- WSGI ------------------------------------------------------------------------------------

def _wsgi_check(environ) -> None:
    if not trusted(environ.get("REMOTE_ADDR")):
        for key in [k for k in environ if k.startswith(_FORWARDED_ENV)]:
            del environ[key]
    chunked = "HTTP_TRANSFER_ENCODING" in environ
    raw = environ.get("CONTENT_LENGTH", "")
    length = content_length([raw] if raw else [], chunked)
    limit = body_limit(environ.get("PATH_INFO", ""))
    if length is not None and length > limit:
        raise _too_large(length, limit)
    if chunked:  # gunicorn de-chunks wsgi.input; Django reads only CONTENT_LENGTH bytes
        stream, body, size = environ["wsgi.input"], _spool(), 0
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                body.close()
                raise _too_large(f"more than {limit}", limit)
            body.write(chunk)
        body.seek(0)
        environ["wsgi.input"], environ["CONTENT_LENGTH"] = body, str(size)
        del environ["HTTP_TRANSFER_ENCODING"]


def wsgi(app):
    """Wrap a Django WSGI application with the guard."""

    def guarded(environ, start_response):
        started = time.perf_counter()
        try:
            try:
                _wsgi_check(environ)
            except Refusal:
                raise
            except Exception:
                instrumentation_failed("guard")
        except Refusal as refusal:
            start_response(f"{refusal.status} {_REASONS[refusal.status]}", [
                ("Content-Type", "application/json"), ("Content-Length", str(len(refusal.body)))])
            _count(refusal.status, environ.get("REQUEST_METHOD", ""), started)
            return [refusal.body]
        return app(environ, start_response)

    return guarded


_REASONS = {400: "Bad Request", 413: "Content Too Large", 414: "URI Too Long", 431: "Request Header Fields Too Large"}
