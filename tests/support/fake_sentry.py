"""A tiny Sentry ingest endpoint for tests: accepts envelopes, decompresses and parses them."""
from __future__ import annotations

import gzip
import json
import re
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_ENVELOPE_PATH = re.compile(r"^/api/(\d+)/envelope/")


def _decompress(body: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # only when the SDK found brotli installed

        return brotli.decompress(body)
    return body


def parse_envelope(data: bytes) -> list[tuple[dict, object]]:
    """The (item header, payload) pairs of a Sentry envelope."""
    lines = data.split(b"\n", 1)
    rest = lines[1] if len(lines) > 1 else b""
    items = []
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[:header["length"]], rest[header["length"]:]
            rest = rest[1:] if rest.startswith(b"\n") else rest
        else:
            payload, _, rest = rest.partition(b"\n")
        try:
            items.append((header, json.loads(payload)))
        except ValueError:
            items.append((header, payload))
    return items


class FakeSentry:
    def __init__(self):
        self.items: list[tuple[dict, object]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not _ENVELOPE_PATH.match(self.path):
                    self.send_response(404)
                    self.end_headers()
                    return
                owner.items.extend(parse_envelope(_decompress(body, self.headers.get("Content-Encoding", ""))))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server.server_port}/42"

    def events(self) -> list[dict]:
        return [payload for header, payload in self.items if header.get("type") == "event"]

    def transactions(self) -> list[dict]:
        return [payload for header, payload in self.items if header.get("type") == "transaction"]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
