#!/usr/bin/env python3
"""Local notification inbox: an Alertmanager webhook receiver that records what would have paged.

    python ops/inbox/inbox.py --host 127.0.0.1 --port 9095 --dir var/inbox
    (or INBOX_HOST, INBOX_PORT, INBOX_DIR)

POST /<receiver>        append the Alertmanager webhook payload, with receiver and received_at,
                        as one JSON line to <dir>/notifications.jsonl
GET  /api/notifications the recorded notifications as JSON; filters ?receiver=&alertname=&status=
GET  /                  an HTML table, one row per alert
GET  /healthz           "ok"
Standard library only, so it runs before any virtualenv exists.
"""

import argparse
import html
import json
import os
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

MAX_BODY_BYTES = 10 * 1024 * 1024  # Alertmanager caps a group well below this; refuse anything bigger


class Store:
    """Append-only JSON-lines file of notifications."""

    def __init__(self, directory):
        self.path = Path(directory) / "notifications.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # handler threads append concurrently; keep lines whole

    def append(self, notification):
        line = json.dumps(notification, sort_keys=True) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line)

    def load(self, receiver=None, alertname=None, status=None):
        """Return the notifications matching every given filter, oldest first."""
        with self._lock:
            lines = self.path.read_text(encoding="utf-8").splitlines() if self.path.exists() else []
        found = []
        for line in lines:
            try:
                n = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash mid-write must not hide the others
            if receiver and n.get("receiver") != receiver:
                continue
            if status and n.get("status") != status:
                continue
            if alertname and alertname not in {a.get("labels", {}).get("alertname") for a in _alerts(n)}:
                continue
            found.append(n)
        return found


def _alerts(notification):
    alerts = notification.get("alerts")
    return [a for a in alerts if isinstance(a, dict)] if isinstance(alerts, list) else []


def _link(url, text):
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return ""
    return f'<a href="{html.escape(url)}">{text}</a>'


def render_html(notifications):
    """Return the inbox page: newest first, one row per alert."""
    rows = []
    for n in reversed(notifications):
        for a in _alerts(n):
            labels, annotations = a.get("labels", {}), a.get("annotations", {})
            cells = [
                html.escape(str(n.get("received_at", ""))),
                html.escape(str(n.get("receiver", ""))),
                html.escape(str(labels.get("alertname", ""))),
                html.escape(str(a.get("status", n.get("status", "")))),
                html.escape(str(labels.get("severity", ""))),
                html.escape(str(annotations.get("summary", ""))),
                _link(annotations.get("runbook_url"), "runbook"),
                _link(annotations.get("dashboard_url"), "dashboard"),
            ]
            rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in
                   ("time", "receiver", "alertname", "status", "severity", "summary", "runbook", "dashboard"))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Notification inbox</title>"
        "<style>body{font-family:sans-serif}td,th{padding:2px 8px;text-align:left}</style></head>"
        f"<body><h1>Notification inbox</h1><p>{len(rows)} alerts in {len(notifications)} notifications</p>"
        f"<table><tr>{head}</tr>{''.join(rows)}</table></body></html>"
    )


class Handler(BaseHTTPRequestHandler):
    server_version = "inbox/1"
    store = None  # set by make_server

    def do_POST(self):
        receiver = urlsplit(self.path).path.strip("/")
        if not receiver or "/" in receiver:
            return self._send(404, {"error": "post to /<receiver>"})
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return self._send(400, {"error": "bad Content-Length"})
        if length > MAX_BODY_BYTES:
            return self._send(413, {"error": "body too large"})
        try:
            payload = json.loads(self.rfile.read(length) or b"null")
        except ValueError as exc:
            return self._send(400, {"error": f"body is not valid JSON: {exc}"})
        if not isinstance(payload, dict):
            return self._send(400, {"error": "body must be a JSON object (an Alertmanager webhook payload)"})
        payload["receiver"] = receiver  # the URL path is what the route chose; it wins over the body
        payload["received_at"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        self.store.append(payload)
        return self._send(200, {"status": "recorded"})

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/healthz":
            return self._send(200, "ok\n", "text/plain; charset=utf-8")
        if url.path == "/api/notifications":
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            found = self.store.load(query.get("receiver"), query.get("alertname"), query.get("status"))
            return self._send(200, found)
        if url.path == "/":
            return self._send(200, render_html(self.store.load()), "text/html; charset=utf-8")
        return self._send(404, {"error": "not found"})

    def _send(self, code, body, content_type="application/json"):
        data = (body if isinstance(body, str) else json.dumps(body)).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        sys.stderr.write(f"inbox: {self.address_string()} {format % args}\n")


def make_server(host, port, directory):
    """Return a ThreadingHTTPServer recording into directory (call serve_forever on it)."""
    handler = type("BoundHandler", (Handler,), {"store": Store(directory)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True  # a hung client must not block shutdown
    return server


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=os.environ.get("INBOX_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("INBOX_PORT", "9095")))
    parser.add_argument("--dir", default=os.environ.get("INBOX_DIR", "var/inbox"))
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port, args.dir)
    print(f"inbox: listening on http://{args.host}:{server.server_port}, writing {Path(args.dir).resolve()}",
          file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
