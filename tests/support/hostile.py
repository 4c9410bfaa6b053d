"""Hostile-input helpers: a raw HTTP client that sends what `requests` will not, and a strict tier with tokens on."""
from __future__ import annotations

import hashlib
import json
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import stack, web

TOKENS = {"alice": "alice-secret-token", "alice-next": "alice-rotated-token", "bob": "bob-secret-token"}
MAX_UPLOAD = 64 * 1024  # small, so the oversized cases cost little
WSGI_WORKER = "app.api.workers.SyncWorker"  # gunicorn's protocol refusals as JSON, counted
ASGI_WORKER = "app.api.workers.UvicornWorker"  # h11 refusing bare LF


def token_env(**tokens: str) -> str:
    """JOBS_API_TOKENS for {name_or_alias: plaintext}; 'alice-next' is a second token of alice (rotation)."""
    return ",".join(f"{name.removesuffix('-next')}:{hashlib.sha256(t.encode()).hexdigest()}" for name, t in tokens.items())


@dataclass
class Answer:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)


def raw(url: str, data: bytes, timeout: float = 10, pieces: int = 1) -> Answer:
    """Send bytes as they are (in `pieces` writes 0.2 s apart); read the answer until the server
    closes or the body is complete."""
    host, port = url.rsplit("//", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            step = -(-len(data) // pieces)
            for start in range(0, len(data), step):
                if start:
                    time.sleep(0.2)
                sock.sendall(data[start:start + step])
        except (BrokenPipeError, ConnectionResetError):  # the server answered and closed early
            pass
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if _complete(b"".join(chunks)):
                break
    return _parse(b"".join(chunks))


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def _parse(data: bytes) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0] else 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if headers.get("transfer-encoding") == "chunked":
        out, rest = b"", body
        while rest:
            size, _, rest = rest.partition(b"\r\n")
            n = int(size.split(b";")[0] or b"0", 16)
            if n == 0:
                break
            out, rest = out + rest[:n], rest[n + 2:]
        body = out
    return Answer(status, headers, body)


def request(method: str, path: str, headers: dict | list | None = None, body: bytes = b"",
            host: str = "127.0.0.1", length: bool = True) -> bytes:
    """Bytes of one HTTP/1.1 request with Connection: close (and Content-Length unless told not to)."""
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + host.encode("latin-1"), b"Connection: close"]
    for name, value in items:
        lines.append(name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    if length and body is not None:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def bearer(name: str) -> dict:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "hostileboundary") -> tuple[bytes, str]:
    """(body, content type) of form parts (field, filename or None, content)."""
    out = b""
    for field, filename, content in parts:
        disp = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\nContent-Type: text/csv\r\n\r\n".encode() + content + b"\r\n"
    return out + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


@dataclass
class HostileTier:
    name: str
    tier: web.Tier
    var_dir: Path

    @property
    def url(self) -> str:
        return self.tier.url

    def send(self, data: bytes, timeout: float = 10, pieces: int = 1) -> Answer:
        return raw(self.url, data, timeout, pieces)

    def kept_bytes(self) -> dict:
        return {"uploads": folder_bytes(self.var_dir / "media" / "uploads"), "spool": folder_bytes(self.var_dir / "spool")}


def start_hostile_tier(tmp_path_factory, name: str, asgi: bool, broker_url: str = "redis://127.0.0.1:1/0", **env: str):
    """A tier (production settings, tokens on, 2 workers) with the strict worker classes; (tier, procs)."""
    var_dir = tmp_path_factory.mktemp(f"hostile-{name}") / "var"
    (var_dir / "run").mkdir(parents=True)
    stack.migrate(stack.app_env(var_dir, "redis://127.0.0.1:1/0"))
    metrics_dir = var_dir / "prometheus" / name
    app_env = stack.app_env(var_dir, broker_url, **{
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "GUNICORN_WORKERS": "2", "JOBS_API_AUTH": "required",
        "JOBS_API_TOKENS": token_env(**TOKENS), "JOBS_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        # nothing listens there: the limit fails open (counted); test_rate_limit.py gives it a Redis
        "JOBS_API_RATE_LIMIT": "100000/m", "JOBS_API_RATE_LIMIT_CACHE_URL": "redis://127.0.0.1:1/0", **env})
    procs: list = []
    try:
        metrics_proc, metrics_url = web.start_metrics_server(app_env, var_dir, name)
        procs.append(metrics_proc)
        proc, url = stack.start_gunicorn(app_env, var_dir, name=name,
                                         app="app.asgi:application" if asgi else "app.wsgi:application",
                                         extra=["--worker-class", ASGI_WORKER if asgi else WSGI_WORKER])
        procs.append(proc)
        stack.wait_for(lambda: len(web.worker_pids(proc.pid)) == 2, 30, f"2 workers of {name}")
    except BaseException:
        for started in reversed(procs):
            started.stop()
        raise
    return HostileTier(name, web.Tier(url, metrics_url, metrics_dir, proc, metrics_proc), var_dir), procs
