"""gunicorn worker classes whose protocol-level refusals are JSON and counted, like the app's.

gunicorn (WSGI) refuses a bad request line, too many or too long headers, CL+TE and bare LF
itself, with an HTML page that never reaches Django, so no response counter sees it. uvicorn
on h11 accepts bare-LF line endings that gunicorn refuses. These subclasses answer both tiers'
protocol refusals with `{"error", "field", "rule"}` and count them in
django_http_responses_total_by_status_view_method (view "<unnamed view>"):

    GUNICORN_WORKER_CLASS=app.api.workers.SyncWorker          (WSGI tier)
    --worker-class app.api.workers.UvicornWorker              (ASGI tier, h11)
"""
from __future__ import annotations

import json
import re

import h11
from gunicorn import util
from gunicorn.workers.sync import SyncWorker as _SyncWorker
from uvicorn.protocols.http.h11_impl import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE, H11Protocol
from uvicorn_worker import UvicornWorker as _UvicornWorker

_BARE_LF = re.compile(rb"(?<!\r)\n")
_FIELDS = {"LimitRequestLine": "request-line", "InvalidRequestLine": "request-line", "InvalidRequestMethod": "method",
           "InvalidHTTPVersion": "request-line", "LimitRequestHeaders": "headers", "InvalidHeader": "headers",
           "InvalidHeaderName": "headers", "ObsoleteFolding": "headers", "InvalidChunkSize": "body",
           "ChunkMissingTerminator": "body", "InvalidChunkExtension": "body", "UnsupportedTransferCoding": "Transfer-Encoding"}


def _rule(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _count(status: int, method: str) -> None:
    try:
        from django_celery_ops.middleware import count_refused, instrumentation_failed
    except Exception:  # the app is not loaded yet: nothing to count with
        return
    try:
        count_refused(status, method, 0.0)
    except Exception:
        instrumentation_failed("guard")


def _json_answer(status: int, reason: str, message: str, field: str, rule: str) -> bytes:
    body = json.dumps({"error": message or reason, "field": field, "rule": rule}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


class SyncWorker(_SyncWorker):
    """gunicorn's sync worker; its parser's refusals are JSON and counted."""

    _failed = (None, None)

    def init_process(self):
        util.write_error = self._write_error  # gunicorn's base worker writes its error pages with it
        super().init_process()

    def handle_error(self, req, client, addr, exc):
        self._failed = (req, exc)
        try:
            super().handle_error(req, client, addr, exc)
        finally:
            self._failed = (None, None)

    def _write_error(self, sock, status_int, reason, mesg):
        req, exc = self._failed
        name = type(exc).__name__ if exc is not None else "Error"
        if status_int < 500:
            _count(status_int, getattr(req, "method", None) or "")
        util.write_nonblock(sock, _json_answer(status_int, reason, mesg, _FIELDS.get(name, "request"), _rule(name)))


class StrictH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that refuses bare-LF line endings in a request head, as gunicorn does."""

    _head = b""

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state in (h11.IDLE, h11.DONE):  # a request head comes next
            head = self._head + data
            end = head.find(b"\r\n\r\n")
            if _BARE_LF.search(head if end < 0 else head[:end + 4]):
                self._refuse_bare_lf()
                return
            if end < 0 and len(head) > self._head_bound():
                self._refuse_long_head(head)
                return
            self._head = head if end < 0 else b""
        else:
            self._head = b""
        super().data_received(data)

    def _head_bound(self) -> int:
        """h11 refuses an incomplete head longer than this, with a bare "invalid request"."""
        return self.config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE

    def _refuse_long_head(self, head: bytes) -> None:
        """A head still unfinished past h11's bound: 414 or 431, as gunicorn and the guard answer it.

        Whether a long head reaches h11 complete (and the guard answers) or in pieces (and h11
        refuses it) depends on how TCP splits it, so the answer is decided here, not by timing.
        """
        bound = self._head_bound()
        if b"\r\n" not in head:
            status, reason, what, field = 414, "URI Too Long", "request line", "request-line"
        else:
            status, reason, what, field = 431, "Request Header Fields Too Large", "request head", "headers"
        _count(status, head.split(b" ", 1)[0][:16].decode("latin-1") if b" " in head[:17] else "")
        self.transport.write(_json_answer(status, reason, f"the {what} is longer than {bound} bytes", field,
                                          "max_bytes"))
        self.transport.close()

    def _refuse_bare_lf(self) -> None:
        _count(400, "")
        self.transport.write(_json_answer(400, "Bad Request", "bare LF as line terminator: the request head must "
                                          "use CRLF", "request-line", "crlf_line_endings"))
        self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """h11 refused the request (malformed head): JSON and counted, like the sync tier."""
        _count(400, "")
        self.transport.write(_json_answer(400, "Bad Request", f"{msg} (malformed HTTP/1.1 request head)", "request",
                                          "invalid_http_request"))
        self.transport.close()


class UvicornWorker(_UvicornWorker):
    """uvicorn's gunicorn worker on h11, refusing bare LF like the sync tier."""

    CONFIG_KWARGS = {"loop": "asyncio", "http": "app.api.workers:StrictH11Protocol"}
