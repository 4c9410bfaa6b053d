#!/usr/bin/env python3
"""Write a runnable nginx.conf from ops/nginx/nginx.conf.template and the stack environment.

    python ops/nginx/render.py --out var/ops/nginx/nginx.conf          # the local stack (make up)
    python ops/nginx/render.py --docker --out ops/docker/nginx.conf    # docker-compose (committed)

One template for the local stack, the drill stack, the tests and docker-compose; only the
environment differs (scripts/stack-env.sh sets the defaults, docs/proxy.md lists every variable).
The template's placeholders are {{NAME}}, so nginx's own $variables need no escaping. Each
setting is checked here, so a wrong value fails at render time with its name, not as a cryptic
`nginx -t` error at start.
"""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
TEMPLATE = HERE / "nginx.conf.template"
# app/settings.py JOBS_API_MULTIPART_OVERHEAD_BYTES: the envelope around an uploaded file. The
# app refuses a body above JOBS_MAX_UPLOAD_BYTES + this; nginx refuses it first (tests check both agree).
MULTIPART_OVERHEAD_BYTES = 16 * 1024
DEFAULT_UPLOAD_BYTES = 10 * 1024 * 1024  # app/settings.py JOBS_MAX_UPLOAD_BYTES' default
TIMEOUT_MARGIN_SECONDS = 5  # nginx's read timeout = gunicorn's timeout + this, unless set

# The settings and their defaults; None = derived below.
DEFAULTS = {
    "OPS_HOST": "127.0.0.1",
    "NGINX_PORT": "8080",
    "NGINX_ASGI_PORT": "8081",
    "NGINX_STATUS_PORT": "8082",
    "WEB_PORT": "8000",
    "ASGI_PORT": "8001",
    "NGINX_LISTEN_HOST": None,            # OPS_HOST
    "NGINX_WSGI_UPSTREAM": None,          # OPS_HOST:WEB_PORT
    "NGINX_ASGI_UPSTREAM": None,          # OPS_HOST:ASGI_PORT
    "NGINX_WORKER_PROCESSES": "1",
    "NGINX_WORKER_CONNECTIONS": "1024",
    "NGINX_UPSTREAM_KEEPALIVE": "16",      # idle connections kept per upstream and nginx worker
    "GUNICORN_TIMEOUT": "30",              # gunicorn.conf.py's default
    "NGINX_PROXY_READ_TIMEOUT": None,     # GUNICORN_TIMEOUT + TIMEOUT_MARGIN_SECONDS
    "NGINX_PROXY_CONNECT_TIMEOUT": "2",
    "NGINX_PROXY_SEND_TIMEOUT": "30",
    "NGINX_CLIENT_HEADER_TIMEOUT": "10",
    "NGINX_CLIENT_BODY_TIMEOUT": "30",
    "NGINX_SEND_TIMEOUT": "30",
    "NGINX_KEEPALIVE_TIMEOUT": "15",
    "JOBS_MAX_UPLOAD_BYTES": str(DEFAULT_UPLOAD_BYTES),
    "NGINX_SET_REAL_IP_FROM": "",          # load balancers in front of nginx whose X-Forwarded-For counts
    "NGINX_ERROR_LOG_LEVEL": "warn",
}
_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
_INTS = ("NGINX_PORT", "NGINX_ASGI_PORT", "NGINX_STATUS_PORT", "WEB_PORT", "ASGI_PORT", "NGINX_WORKER_CONNECTIONS",
         "NGINX_UPSTREAM_KEEPALIVE", "GUNICORN_TIMEOUT", "NGINX_PROXY_READ_TIMEOUT", "NGINX_PROXY_CONNECT_TIMEOUT",
         "NGINX_PROXY_SEND_TIMEOUT", "NGINX_CLIENT_HEADER_TIMEOUT", "NGINX_CLIENT_BODY_TIMEOUT",
         "NGINX_SEND_TIMEOUT", "NGINX_KEEPALIVE_TIMEOUT", "JOBS_MAX_UPLOAD_BYTES")
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d+$")


def settings(env: dict) -> dict:
    """Return every template value from env (defaults filled in, derived values computed, checked)."""
    values = {key: (env.get(key) or default) for key, default in DEFAULTS.items()}
    host = values["OPS_HOST"]
    values["NGINX_LISTEN_HOST"] = values["NGINX_LISTEN_HOST"] or host
    values["NGINX_WSGI_UPSTREAM"] = values["NGINX_WSGI_UPSTREAM"] or f"{host}:{values['WEB_PORT']}"
    values["NGINX_ASGI_UPSTREAM"] = values["NGINX_ASGI_UPSTREAM"] or f"{host}:{values['ASGI_PORT']}"
    values["NGINX_PROXY_READ_TIMEOUT"] = values["NGINX_PROXY_READ_TIMEOUT"] or str(
        int(values["GUNICORN_TIMEOUT"]) + TIMEOUT_MARGIN_SECONDS)
    for key in _INTS:
        if not str(values[key]).isdigit() or int(values[key]) < 1:
            raise ValueError(f"{key} must be a positive integer, not {values[key]!r}")
    for key in ("NGINX_WSGI_UPSTREAM", "NGINX_ASGI_UPSTREAM"):
        if not _ADDRESS.match(values[key]):
            raise ValueError(f"{key} must be host:port, not {values[key]!r}")
    if values["NGINX_WORKER_PROCESSES"] != "auto" and not values["NGINX_WORKER_PROCESSES"].isdigit():
        raise ValueError("NGINX_WORKER_PROCESSES must be a number or auto")
    values["NGINX_CLIENT_MAX_BODY_SIZE"] = str(int(values["JOBS_MAX_UPLOAD_BYTES"]) + MULTIPART_OVERHEAD_BYTES)
    trusted_proxies(values)
    return values


def trusted_proxies(values: dict) -> list[str]:
    """NGINX_SET_REAL_IP_FROM as a list of addresses/networks (each one checked: nginx's geo needs an IP or CIDR)."""
    nets = [net.strip() for net in values["NGINX_SET_REAL_IP_FROM"].split(",") if net.strip()]
    for net in nets:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ValueError(f"NGINX_SET_REAL_IP_FROM must list addresses or networks, not {net!r}") from None
    return nets


def render(env: dict, var_dir: str | Path, error_log: str = "stderr", access_log: str | None = None, *,
           pid: str | None = None, workers_as_root: bool | None = None, status_host: str = "127.0.0.1",
           status_allow: tuple[str, ...] = ("127.0.0.1",)) -> str:
    """Return the nginx.conf text for env; state under var_dir/nginx, the access log in var_dir/log.

    The keywords are where a variant differs (render_docker): the pid file (default
    var_dir/run/nginx.pid), whether the workers run as root (default: when run as root), the
    address stub_status listens on and the networks allowed to read it.
    """
    values = settings(env)
    var_dir = Path(var_dir)
    values["NGINX_VAR"] = str(var_dir / "nginx")
    values["NGINX_PID"] = pid or str(var_dir / "run" / "nginx.pid")
    values["NGINX_PID_NOTE"] = "" if pid else (
        "   # with the stack's other pid files: scripts/down.sh stops what supervisord left")
    values["NGINX_ERROR_LOG"] = error_log
    values["NGINX_ACCESS_LOG"] = access_log or str(var_dir / "log" / "nginx-access.log")
    # As root, the workers run as the user who started the stack (as every other process of it):
    # nginx's default `nobody` cannot enter a 0700 var folder to buffer request bodies.
    workers_as_root = os.geteuid() == 0 if workers_as_root is None else workers_as_root
    values["USER_LINE"] = "user root;\n" if workers_as_root else ""
    values["NGINX_STATUS_LISTEN_HOST"] = status_host
    values["STATUS_ALLOW_LINES"] = "".join(f"            allow {net};\n" for net in status_allow)
    real_ip = trusted_proxies(values)
    values["REAL_IP_LINES"] = "".join(
        [f"    set_real_ip_from {net};\n" for net in real_ip]
        + (["    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;\n"] if real_ip else []))
    values["TRUSTED_PEER_LINES"] = "".join(f"        {net} 1;\n" for net in real_ip)  # the same peers

    def substitute(match):
        return str(values[match[1]])
    return _PLACEHOLDER.sub(substitute, TEMPLATE.read_text())


def write(env: dict, out: str | Path, var_dir: str | Path, **kwargs) -> Path:
    """Render into out, make nginx's folders under var_dir; return out."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for sub in ("nginx", "log", "run"):
        (Path(var_dir) / sub).mkdir(parents=True, exist_ok=True)
    (Path(var_dir) / "log" / "nginx-access.log").touch()  # mtail may start first: the file is there
    out.write_text(f"# Rendered by ops/nginx/render.py from {TEMPLATE.name}; do not edit.\n" + render(env, var_dir, **kwargs))
    return out


# docker-compose: service names instead of loopback, every address inside the compose network.
DOCKER_ENV = {
    "NGINX_LISTEN_HOST": "0.0.0.0",
    "NGINX_WSGI_UPSTREAM": "web:8000",
    "NGINX_ASGI_UPSTREAM": "web-asgi:8001",
}
DOCKER_VAR = "/var/lib/nginx-ops"
DOCKER_ACCESS_LOG = "/var/log/nginx-ops/access.log"


def render_docker() -> str:
    # The container's nginx starts as root and may drop to nobody: its folders are its own.
    # stub_status must answer the exporter's container: the compose network, not only loopback.
    return render(DOCKER_ENV, DOCKER_VAR, error_log="stderr", access_log=DOCKER_ACCESS_LOG,
                  pid=f"{DOCKER_VAR}/nginx/nginx.pid", workers_as_root=False, status_host="0.0.0.0",
                  status_allow=("127.0.0.1", "172.16.0.0/12"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="the nginx.conf to write")
    parser.add_argument("--docker", action="store_true", help="the docker-compose variant (no environment read)")
    args = parser.parse_args(argv)
    if args.docker:
        args.out.write_text(f"# Rendered by ops/nginx/render.py --docker from {TEMPLATE.name}; do not edit.\n"
                            + render_docker())
    else:
        env = dict(os.environ)
        write(env, args.out, env.get("OPS_VAR_DIR") or ROOT / "var")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
