"""celery-mixin's alerts (vendored verbatim) and a small Prometheus to run them on live metrics."""
from __future__ import annotations

import os
import shutil

import requests
import yaml

from tests.support import stack

MIXIN_ALERTS = stack.ROOT / "tests/celery/fixtures/celery-mixin-alerts.yaml"


def mixin_alerts() -> dict[str, str]:
    """celery-mixin's alert expressions by alert name, verbatim (fixtures/celery-mixin-alerts.yaml)."""
    groups = yaml.safe_load(MIXIN_ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def start_prometheus(var_dir, targets: dict[str, list[str]]) -> tuple[stack.Proc, str]:
    """Prometheus scraping each job's host:port targets every second; returns it and its URL."""
    port = stack.free_port()
    base = var_dir / f"prometheus-{port}"
    base.mkdir(parents=True)
    config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": job, "static_configs": [{"targets": hosts}]}
                                 for job, hosts in targets.items()]}
    (base / "prometheus.yml").write_text(yaml.safe_dump(config))
    proc = stack.Proc(f"prometheus-{port}", [shutil.which("prometheus") or "/usr/bin/prometheus", f"--config.file={base / 'prometheus.yml'}",
                                             f"--storage.tsdb.path={base / 'data'}",
                                             f"--web.listen-address={stack.HOST}:{port}"], os.environ.copy(), var_dir)
    url = f"http://{stack.HOST}:{port}"

    def ready():
        assert proc.alive(), proc.log()[-3000:]
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200

    stack.wait_for(ready, 30, "prometheus ready")
    return proc, url


def query(url: str, expr: str) -> dict[frozenset, float]:
    """Instant query: {labels (without __name__): value}."""
    body = requests.get(f"{url}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    return {frozenset((k, v) for k, v in r["metric"].items() if k != "__name__"): float(r["value"][1])
            for r in body["data"]["result"]}
