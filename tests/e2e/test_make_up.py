"""The quickstart: `make up` serves the app within a minute and `make down` leaves nothing behind."""
import os
import signal
import subprocess
import time

import pytest
import requests

from ops.drills.procs import stack_pids
from tests.support import stack

pytestmark = pytest.mark.e2e

PORT_VARS = ["WEB_PORT", "ASGI_PORT", "WEB_METRICS_PORT", "ASGI_METRICS_PORT", "FLOWER_PORT", "EXPORTER_PORT",
             "REDIS_PORT", "REDIS_EXPORTER_PORT", "PROMETHEUS_PORT", "ALERTMANAGER_PORT", "INBOX_PORT",
             "NGINX_PORT", "NGINX_ASGI_PORT", "NGINX_STATUS_PORT", "NGINX_EXPORTER_PORT", "NGINX_LOG_EXPORTER_PORT"]


@pytest.fixture
def stack_env(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "OPS_"))}
    env.update({name: str(stack.free_port()) for name in PORT_VARS})
    env["OPS_VAR_DIR"] = str(tmp_path / "var")
    yield env
    # Whatever the test did (a start that timed out, a failed assertion), no process of this stack
    # outlives it: a left-over stack holds ports and CPU for every later test.
    for pid in stack_pids(env["OPS_VAR_DIR"]):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _start(stack_env, tmp_path):
    with open(tmp_path / "make-up.log", "wb") as log:
        proc = subprocess.Popen(["make", "up"], cwd=stack.ROOT, env=stack_env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{stack_env['WEB_PORT']}"
    started = time.monotonic()
    stack.wait_for(lambda: requests.get(f"{url}/healthz", timeout=2).ok, 60, "make up to serve /healthz")
    return proc, url, time.monotonic() - started


def _check_proxy(env, tmp_path):
    """The proxy URLs `make up` prints answer: both tiers through nginx, stub_status and both exporters."""
    printed = (tmp_path / "make-up.log").read_text()
    urls = {"wsgi": f"http://127.0.0.1:{env['NGINX_PORT']}/healthz",
            "asgi": f"http://127.0.0.1:{env['NGINX_ASGI_PORT']}/healthz",
            "stub_status": f"http://127.0.0.1:{env['NGINX_STATUS_PORT']}/stub_status",
            "nginx": f"http://127.0.0.1:{env['NGINX_EXPORTER_PORT']}/metrics",
            "nginx-log": f"http://127.0.0.1:{env['NGINX_LOG_EXPORTER_PORT']}/metrics"}
    for name, proxy_url in urls.items():
        assert proxy_url in printed, f"make up does not print the {name} URL {proxy_url}"
        stack.wait_for(lambda u=proxy_url: requests.get(u, timeout=2).ok, 30, f"{name} at {proxy_url}")
    answer = requests.get(urls["wsgi"], headers={"X-Request-Id": "make-up-proxy-check"}, timeout=5)
    assert answer.json()["status"] == "ok" and answer.headers["X-Request-Id"] == "make-up-proxy-check"
    assert "nginx_up 1" in requests.get(urls["nginx"], timeout=5).text
    stack.wait_for(lambda: 'nginx_http_responses_total{status="200",upstream="wsgi"}'
                   in requests.get(urls["nginx-log"], timeout=2).text, 15, "the access-log metrics")


def test_make_up_serves_within_a_minute_and_make_down_leaves_nothing(stack_env, tmp_path):
    proc, url, _elapsed = _start(stack_env, tmp_path)
    try:
        assert requests.get(f"{url}/readyz", timeout=5).json()["status"] == "ok"
        _check_proxy(stack_env, tmp_path)
        var_dir = stack_env["OPS_VAR_DIR"]
        assert len(stack_pids(var_dir)) >= 4
        subprocess.run(["make", "down"], cwd=stack.ROOT, env=stack_env, check=True, capture_output=True, timeout=90)
        assert proc.wait(60) == 0  # `make up` ends cleanly when stopped
        stack.wait_for(lambda: not stack_pids(var_dir), 20, "no process of the stack left")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_ctrl_c_stops_every_process(stack_env, tmp_path):
    proc, _url, _ = _start(stack_env, tmp_path)
    try:
        os.killpg(proc.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        proc.wait(60)  # make itself dies of SIGINT, as it does in a terminal
        stack.wait_for(lambda: not stack_pids(stack_env["OPS_VAR_DIR"]), 20, "no process of the stack left")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
