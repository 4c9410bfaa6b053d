#!/usr/bin/env python3
"""Write the runnable configuration of the local stack under var/ops/.

ops/ stays the only source: this copies prometheus.yml and the rules, writes the targets files
with this stack's ports, renders alertmanager.yml with this stack's inbox, and turns
ops/Procfile (one line per process) into a supervisord configuration, so that each process
can be stopped, killed and started on its own (the fault drills do) and restarts on a crash. For fault drills
it can write a time-compressed copy of the rules (OPS_RULES_COMPRESS=20) and shorter scrape,
evaluation and notification intervals; docs/drills.md explains the trade-off.

Environment (scripts/stack-env.sh sets the defaults): OPS_VAR_DIR, OPS_HOST, the *_PORT
variables, OPS_SCRAPE_INTERVAL, OPS_EVALUATION_INTERVAL, OPS_RULES_COMPRESS, OPS_ALERTMANAGER_FAST.
"""
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
JOB_PORTS = {  # Prometheus job -> the variable holding its port (docs/metrics.md)
    "django-wsgi": "WEB_METRICS_PORT",
    "django-asgi": "ASGI_METRICS_PORT",
    "celery-exporter": "EXPORTER_PORT",
    "redis": "REDIS_EXPORTER_PORT",
    "prometheus": "PROMETHEUS_PORT",
    "alertmanager": "ALERTMANAGER_PORT",
    "nginx": "NGINX_EXPORTER_PORT",
    "nginx-log": "NGINX_LOG_EXPORTER_PORT",
}


def _module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def render_prometheus(out: Path, env: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "ops/prometheus/prometheus.yml").read_text())
    for key, var in (("scrape_interval", "OPS_SCRAPE_INTERVAL"), ("evaluation_interval", "OPS_EVALUATION_INTERVAL")):
        if env.get(var):
            config["global"][key] = env[var]
    if env.get("OPS_SCRAPE_INTERVAL"):
        # the timeout may not exceed the interval
        config["global"]["scrape_timeout"] = env["OPS_SCRAPE_INTERVAL"]
    (out / "prometheus.yml").write_text("# Rendered by scripts/render_stack.py; edit ops/prometheus/prometheus.yml\n"
                                        + yaml.safe_dump(config, sort_keys=False))
    rules = out / "rules"
    shutil.rmtree(rules, ignore_errors=True)
    factor = float(env.get("OPS_RULES_COMPRESS") or 0)
    if factor:
        generate = _module(ROOT / "ops/prometheus/generate.py", "generate")
        if generate.main(["--compress", str(factor), "--out", str(rules)]) != 0:
            raise SystemExit("render_stack: compressing the rules failed")
    else:
        shutil.copytree(ROOT / "ops/prometheus/rules", rules)
    targets = out / "targets"
    targets.mkdir(exist_ok=True)
    host = env.get("OPS_HOST", "127.0.0.1")
    for job, var in JOB_PORTS.items():
        (targets / f"{job}.yml").write_text(yaml.safe_dump([{"targets": [f"{host}:{env[var]}"]}]))
    return out / "prometheus.yml"


def render_alertmanager(out: Path, env: dict) -> Path:
    render = _module(ROOT / "ops/alertmanager/render.py", "am_render")
    timings = {}
    if env.get("OPS_ALERTMANAGER_FAST") == "1":
        timings = {"group_wait": "1s", "group_interval": "2s", "repeat_interval": "1m"}
    inbox = f"http://{env.get('OPS_HOST', '127.0.0.1')}:{env['INBOX_PORT']}"
    return render.render(out, inbox, timings)


_SUPERVISORD = """\
; Rendered by scripts/render_stack.py from ops/Procfile; do not edit.
[supervisord]
nodaemon=true
logfile={var}/log/supervisord.log
pidfile={var}/run/supervisord.pid
childlogdir={var}/log
loglevel=info

[unix_http_server]
file={var}/run/supervisor.sock
chmod=0700

[supervisorctl]
serverurl=unix://{var}/run/supervisor.sock

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface
"""

_PROGRAM = """
[program:{name}]
command=/bin/bash -c {command}
directory={root}
priority={priority}
autostart=true
autorestart=true
startsecs=1
startretries=10
stopsignal=TERM
stopwaitsecs=40
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={var}/log/{name}.log
stdout_logfile_maxbytes=20MB
stdout_logfile_backups=2
"""


def procfile(path: Path = ROOT / "ops/Procfile") -> dict[str, str]:
    """Return {process name: shell command} from a Procfile."""
    processes = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, command = line.split(":", 1)
            processes[name.strip()] = command.strip()
    return processes


def render_supervisor(out: Path, env: dict) -> Path:
    var = env["OPS_VAR_DIR"]
    text = _SUPERVISORD.format(var=var)
    for name, command in procfile().items():
        quoted = "'" + command.replace("'", "'\"'\"'") + "'"
        text += _PROGRAM.format(name=name, command=quoted.replace("%", "%%"), root=ROOT, var=var,
                                priority=10 if name == "redis" else 100)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "supervisord.conf"
    path.write_text(text)
    return path


def render_nginx(out: Path, env: dict) -> Path:
    render = _module(ROOT / "ops/nginx/render.py", "nginx_render")  # the one nginx.conf source (ops/nginx/)
    return render.write(env, out / "nginx.conf", env["OPS_VAR_DIR"])


def main() -> int:
    env = dict(os.environ)
    var = Path(env["OPS_VAR_DIR"])
    print(render_supervisor(var / "ops", env))
    print(render_nginx(var / "ops/nginx", env))
    print(render_prometheus(var / "ops/prometheus", env))
    print(render_alertmanager(var / "ops/alertmanager", env))
    return 0


if __name__ == "__main__":
    sys.exit(main())
