"""Helpers for the Celery observability tests: the exporter process, a producer, metric parsing."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from ops.drills.procs import HOST, ROOT, Proc, free_port, wait_for


def start_exporter(env: dict, var_dir: Path, port: int | None = None, **overrides: str) -> tuple[Proc, str]:
    """The exporter serving the workers' metrics folder (env's PROMETHEUS_MULTIPROC_DIR)."""
    overrides.setdefault("metrics_dir", env.get("PROMETHEUS_MULTIPROC_DIR", ""))
    port = port or free_port()
    env = {k: v for k, v in env.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"EXPORTER_HOST": HOST, "EXPORTER_PORT": str(port), "EXPORTER_POLL_SECONDS": "1",
                "EXPORTER_METRICS_DIR": overrides.pop("metrics_dir", "")})
    env.update(overrides)
    proc = Proc(f"exporter-{port}", [sys.executable, "-m", "django_celery_ops.exporter", "--app", "app.celery:app"], env, var_dir)
    url = f"http://{HOST}:{port}"

    def up():
        assert proc.alive(), f"exporter exited:\n{proc.log()[-3000:]}"
        return requests.get(f"{url}/metrics", timeout=2).status_code == 200

    wait_for(up, 30, f"exporter on {url}")
    return proc, url


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics as {(sample name, labels): value}."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict, metric: str, **labels: str) -> float:
    """Sum of the samples called `metric` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == metric and want <= lab)


def produce(env: dict, *calls: str, timeout: float = 120) -> str:
    """Run producer calls (Python statements using `tasks`) in a fresh process of the app."""
    code = "\n".join([
        "import app",
        "from django_celery_ops import multiprocess",
        "multiprocess.setup('producer')",
        "from app.drills import tasks",
        *calls,
    ])
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
