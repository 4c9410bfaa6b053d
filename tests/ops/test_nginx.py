"""nginx from ops/nginx/ in front of a real gunicorn: edge refusals, headers, logs and its metrics.

One gunicorn (the WSGI tier, 2 sync workers, the drill views on) behind one nginx rendered by
ops/nginx/render.py, with mtail (ops/nginx/nginx.mtail) and prometheus-nginx-exporter beside
it. nginx's ASGI side points at a closed port: its answers are nginx's own 502s. Short proxy
read timeout (2 s) so a 504 takes two seconds; gunicorn's timeout stays above it for the test.
127.0.0.3 stands for a load balancer in front of nginx (NGINX_SET_REAL_IP_FROM); 127.0.0.1 and
127.0.0.2 are peers nginx does not trust.
"""
import json
import re
import socket
import threading
import time

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from ops.drills.procs import (
    HOST,
    app_env,
    http,
    load_module,
    migrate,
    start_gunicorn,
    start_mtail,
    start_nginx,
    start_nginx_exporter,
    wait_for,
)
from tests.support.stack import ROOT

pytestmark = pytest.mark.integration
UPLOAD_LIMIT = 1000  # JOBS_MAX_UPLOAD_BYTES of this test's nginx and app
LOAD_BALANCER = "127.0.0.3"  # the one peer nginx trusts (NGINX_SET_REAL_IP_FROM)
render = load_module(ROOT / "ops" / "nginx" / "render.py")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    var = tmp_path_factory.mktemp("nginx")
    metrics_dir = var / "metrics"
    metrics_dir.mkdir()
    env = app_env(var, "redis://127.0.0.1:1/0", DJANGO_ENV="drills", DRILLS_ENABLED="1",
                  GUNICORN_WORKERS="2", GUNICORN_TIMEOUT="20", OBS_TRUSTED_PROXIES="127.0.0.1/32",
                  PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), JOBS_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT))
    migrate(env)
    gunicorn, wsgi_url = start_gunicorn(env, var)
    try:
        nginx = start_nginx(var, wsgi_url, None, NGINX_PROXY_READ_TIMEOUT="2",
                            JOBS_MAX_UPLOAD_BYTES=str(UPLOAD_LIMIT), NGINX_SET_REAL_IP_FROM=f"{LOAD_BALANCER}/32")
        mtail = start_mtail(var / "mtail", nginx.access_log)
        exporter = start_nginx_exporter(var / "exporter", nginx.status_url)
    except BaseException:
        gunicorn.stop()
        raise
    yield {"gunicorn": gunicorn, "wsgi_url": wsgi_url, "nginx": nginx, "mtail": mtail, "exporter": exporter,
           "metrics_dir": metrics_dir}
    for proc in (exporter, mtail, nginx, gunicorn):
        proc.stop()


def _raw(port: int, request: bytes, source: str = HOST, timeout: float = 5.0) -> bytes:
    """Send raw bytes from a loopback source address; return the answer (head and Content-Length body).

    Read by length, not to EOF: after a 413 nginx keeps the connection a while to drain a body
    this client never sends.
    """
    with socket.create_connection((HOST, port), timeout=timeout, source_address=(source, 0)) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        length = re.search(rb"(?im)^content-length: *(\d+)", answer.partition(b"\r\n\r\n")[0])
        while length and len(answer.partition(b"\r\n\r\n")[2]) < int(length[1]) and (chunk := sock.recv(65536)):
            answer += chunk
    return answer


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _log_line(nginx, rid: str) -> str:
    return wait_for(lambda: next((line for line in nginx.access_log.read_text().splitlines()
                                  if f" rid={rid} " in line), None), 5, f"nginx's access-log line of {rid}")


def _web_metrics(metrics_dir) -> CollectorRegistry:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    return registry


def _queue_samples(metrics_dir) -> tuple[float, float]:
    """(count, sum) of django_http_request_queue_seconds across the workers' files."""
    registry = _web_metrics(metrics_dir)
    count = registry.get_sample_value("django_http_request_queue_seconds_count") or 0.0
    return count, registry.get_sample_value("django_http_request_queue_seconds_sum") or 0.0


def _responses(mtail) -> dict[tuple[str, str], float]:
    _, body = http(mtail.url + "/metrics")
    found = {}
    for m in re.finditer(r'^nginx_http_responses_total\{([^}]*)\} (\S+)$', body.decode(), re.MULTILINE):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[1]))
        found[labels["upstream"], labels["status"]] = float(m[2])
    return found


def _sample(mtail, name: str, **labels) -> float:
    _, body = http(mtail.url + "/metrics")
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in body.decode().splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name}{{{wanted}}} not exported")


def test_nginx_config_is_valid_and_derives_limits_and_timeouts_from_the_stack_env(tmp_path):
    from django.conf import settings

    assert render.MULTIPART_OVERHEAD_BYTES == settings.JOBS_API_MULTIPART_OVERHEAD_BYTES
    values = render.settings({"GUNICORN_TIMEOUT": "30", "JOBS_MAX_UPLOAD_BYTES": "1048576"})
    assert values["NGINX_PROXY_READ_TIMEOUT"] == "35"  # gunicorn gives up first (docs/proxy.md)
    assert values["NGINX_CLIENT_MAX_BODY_SIZE"] == str(1048576 + 16 * 1024)
    with pytest.raises(ValueError, match="NGINX_PROXY_READ_TIMEOUT"):
        render.settings({"NGINX_PROXY_READ_TIMEOUT": "35s"})
    with pytest.raises(ValueError, match="NGINX_SET_REAL_IP_FROM"):
        render.settings({"NGINX_SET_REAL_IP_FROM": "10.0.0.0/8, lb.example"})
    conf = render.write({"NGINX_PORT": "18080", "NGINX_SET_REAL_IP_FROM": "10.0.0.0/8, 192.0.2.7, 2001:db8::/32"},
                        tmp_path / "nginx.conf", tmp_path)
    import subprocess

    result = subprocess.run(["nginx", "-t", "-e", "stderr", "-p", str(tmp_path / "nginx"), "-c", str(conf)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_committed_docker_config_is_rendered_from_the_template():
    assert (ROOT / "ops" / "docker" / "nginx.conf").read_text().split("\n", 1)[1] == render.render_docker()


def test_the_docker_variant_is_the_local_rendering_with_its_own_values_not_a_patched_text():
    """render_docker passes its values into the template; the text patching it replaced gives the same text."""
    import re as _re

    local = render.render(render.DOCKER_ENV, render.DOCKER_VAR, error_log="stderr",
                          access_log=render.DOCKER_ACCESS_LOG, workers_as_root=True)
    patched = _re.sub(r"(?m)^pid .*$", f"pid {render.DOCKER_VAR}/nginx/nginx.pid;", local, count=1)
    patched = patched.replace("user root;\n", "").replace("listen 127.0.0.1:8082;", "listen 0.0.0.0:8082;").replace(
        "            allow 127.0.0.1;\n", "            allow 127.0.0.1;\n            allow 172.16.0.0/12;\n")
    assert patched != local and render.render_docker() == patched


def test_oversized_upload_is_refused_at_the_edge_with_the_apps_json_shape(proxy):
    nginx, gunicorn = proxy["nginx"], proxy["gunicorn"]
    rid = "edge-413-check"
    limit = UPLOAD_LIMIT + render.MULTIPART_OVERHEAD_BYTES
    answer = _raw(_port(nginx.url), (f"POST /api/imports/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Id: {rid}\r\n"
                                     f"Content-Type: multipart/form-data; boundary=x\r\n"
                                     f"Content-Length: {limit + 1}\r\nConnection: close\r\n\r\n").encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"application/json" in head and f"x-request-id: {rid}".encode() in head.lower()
    refusal = json.loads(body)
    assert refusal["field"] == "Content-Length" and refusal["rule"] == "max_bytes" and refusal["limit"] == limit
    assert "up=none" in _log_line(nginx, rid)
    assert rid not in gunicorn.log()  # the body never reached gunicorn


def test_request_id_passes_through_or_is_generated_and_is_logged_on_both_sides(proxy):
    nginx, gunicorn = proxy["nginx"], proxy["gunicorn"]
    status, body = http(nginx.url + "/drills/request-headers/", headers={"X-Request-Id": "client-rid-1"})
    assert status == 200 and json.loads(body)["request_id"] == "client-rid-1"
    assert "up=wsgi" in _log_line(nginx, "client-rid-1")
    wait_for(lambda: "rid=client-rid-1" in gunicorn.log(), 5, "gunicorn's access-log line")
    # No id, or one the app would refuse (a space): nginx makes one; both sides log that one.
    for sent in (None, "bad id"):
        status, body = http(nginx.url + "/drills/request-headers/", headers={"X-Request-Id": sent} if sent else {})
        seen = json.loads(body)
        assert re.fullmatch(r"[0-9a-f]{32}", seen["request_id"]) and seen["HTTP_X_REQUEST_ID"] == seen["request_id"]
        _log_line(nginx, seen["request_id"])
        wait_for(lambda: f"rid={seen['request_id']}" in gunicorn.log(), 5, "gunicorn's access-log line")


def test_real_client_ip_reaches_django_and_untrusted_forwarded_headers_do_not(proxy):
    nginx, wsgi_url = proxy["nginx"], proxy["wsgi_url"]
    request = (b"GET /drills/request-headers/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"X-Forwarded-For: 203.0.113.9\r\nConnection: close\r\n\r\n")
    seen = json.loads(_raw(_port(nginx.url), request, source="127.0.0.2").partition(b"\r\n\r\n")[2])
    assert seen["remote_addr"] == "127.0.0.1"  # the peer gunicorn sees is nginx
    assert seen["HTTP_X_REAL_IP"] == "127.0.0.2"  # nginx's view of the client
    assert seen["HTTP_X_FORWARDED_FOR"] == "203.0.113.9, 127.0.0.2"  # the client's claim, then the real peer
    line = _log_line(nginx, seen["request_id"])
    assert line.startswith("127.0.0.2 ") and 'xff="203.0.113.9"' in line
    # Straight to gunicorn from a peer outside OBS_TRUSTED_PROXIES: the guard drops the claim.
    direct = json.loads(_raw(_port(wsgi_url), request, source="127.0.0.2").partition(b"\r\n\r\n")[2])
    assert direct["remote_addr"] == "127.0.0.2" and direct["HTTP_X_FORWARDED_FOR"] is None


def _forwarded(port: int, source: str, proto: str | None, forwarded_for: str | None = None) -> dict:
    """What the app saw of a request from source claiming X-Forwarded-Proto: proto (drills:request-headers)."""
    head = "".join(f"{name}: {value}\r\n" for name, value in
                   (("X-Forwarded-Proto", proto), ("X-Forwarded-For", forwarded_for)) if value)
    request = f"GET /drills/request-headers/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}Connection: close\r\n\r\n"
    return json.loads(_raw(port, request.encode(), source=source).partition(b"\r\n\r\n")[2])


def test_forwarded_proto_is_believed_only_from_the_trusted_load_balancer(proxy):
    """TLS ends at the load balancer: its X-Forwarded-Proto: https reaches Django; anyone else's is nginx's scheme."""
    port = _port(proxy["nginx"].url)
    seen = _forwarded(port, LOAD_BALANCER, "https", forwarded_for="203.0.113.7")
    assert seen["HTTP_X_FORWARDED_PROTO"] == "https" and seen["scheme"] == "https"  # SECURE_PROXY_SSL_HEADER
    assert seen["HTTP_X_REAL_IP"] == "203.0.113.7"  # the same trusted peers: realip takes its client address
    assert _forwarded(port, LOAD_BALANCER, "http")["HTTP_X_FORWARDED_PROTO"] == "http"
    for proto in (None, "gopher", "https, http"):  # nothing, or nothing nginx passes on: its own scheme
        assert _forwarded(port, LOAD_BALANCER, proto)["HTTP_X_FORWARDED_PROTO"] == "http", proto
    for source in ("127.0.0.1", "127.0.0.2"):  # not the load balancer: the claim is overwritten
        seen = _forwarded(port, source, "https", forwarded_for="203.0.113.7")
        assert seen["HTTP_X_FORWARDED_PROTO"] == "http" and seen["scheme"] == "http", source
        assert seen["HTTP_X_REAL_IP"] == source


def test_x_request_start_reaches_django_and_fills_the_queue_time_histogram(proxy):
    nginx, wsgi_url, metrics_dir = proxy["nginx"], proxy["wsgi_url"], proxy["metrics_dir"]
    status, body = http(nginx.url + "/drills/request-headers/")
    assert re.fullmatch(r"t=\d{10}\.\d{3}", json.loads(body)["HTTP_X_REQUEST_START"])
    count, total = _queue_samples(metrics_dir)
    http(wsgi_url + "/healthz")  # direct: no header, no sample
    assert _queue_samples(metrics_dir)[0] == count
    # A client that reaches gunicorn itself cannot claim a start: the guard drops the header of a peer
    # outside OBS_TRUSTED_PROXIES, so a forged hour of queueing fires nothing.
    forged = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Start: t=%.3f\r\n"
              b"Connection: close\r\n\r\n" % (time.time() - 3000))
    assert b" 200 " in _raw(_port(wsgi_url), forged, source="127.0.0.2").split(b"\r\n", 1)[0] + b" "
    assert _queue_samples(metrics_dir)[0] == count
    # Both workers busy for 1.5 s: the next request through nginx waits in the backlog until one is
    # free (below nginx's 2 s read timeout of this test).
    busy = [threading.Thread(target=http, args=(wsgi_url + "/drills/slow-view/?seconds=1.5",)) for _ in range(2)]
    for thread in busy:
        thread.start()
    wait_for(lambda: _web_metrics(metrics_dir).get_sample_value("gunicorn_requests_in_flight") == 2, 5,
             "both workers to be busy", interval=0.02)
    assert http(nginx.url + "/healthz")[0] == 200
    for thread in busy:
        thread.join()
    after_count, after_total = _queue_samples(metrics_dir)
    assert after_count == count + 1
    # The wait is 1.5 s less the time it took to see both workers busy and send the request: a loaded
    # machine takes a while to notice, so only a broad window is certain.
    assert 0.2 < after_total - total < 1.9


def test_stub_status_answers_on_loopback_only(proxy):
    nginx = proxy["nginx"]
    status, body = http(nginx.status_url)
    assert status == 200 and b"Active connections" in body
    port = int(nginx.status_url.split(":")[2].split("/")[0])
    with pytest.raises(OSError):  # bound to 127.0.0.1 only: another address does not even connect
        socket.create_connection(("127.0.0.2", port), timeout=2).close()
    assert http(nginx.url + "/stub_status")[0] == 404  # not on the public ports: that is the app's 404


def test_exporter_reads_stub_status(proxy):
    _, body = http(proxy["exporter"].url + "/metrics")
    text = body.decode()
    assert re.search(r"^nginx_up 1$", text, re.MULTILINE)
    assert re.search(r"^nginx_http_requests_total [1-9]", text, re.MULTILINE)


def test_access_log_metrics_count_each_status_by_upstream_exactly(proxy):
    nginx, mtail = proxy["nginx"], proxy["mtail"]

    def settled():  # mtail has read every line nginx wrote so far
        lines = len(nginx.access_log.read_text().splitlines())
        return sum(_responses(mtail).values()) == lines
    wait_for(settled, 10, "mtail to catch up with the access log")
    before = _responses(mtail)

    def observed(name, **labels):
        try:
            return _sample(mtail, name, upstream="wsgi", **labels)
        except AssertionError:
            return 0.0
    requests_before = observed("nginx_request_seconds_count")
    slow_before = observed("nginx_upstream_response_seconds_count") - observed(
        "nginx_upstream_response_seconds_bucket", le="0.5")
    # A user agent forging the machine-read fields: nginx escapes its quotes, mtail's match is anchored.
    forged = 'x" status=502 up=asgi upstream="-" ustatus="502" urt="0.001" rt=0.001 xff="-'
    for agent in (forged, "bench", "bench"):
        assert http(nginx.url + "/healthz", headers={"User-Agent": agent})[0] == 200
    assert http(nginx.url + "/drills/slow-view/?seconds=3")[0] == 504  # nginx waits 2 s
    for _ in range(2):
        assert http(nginx.asgi_url + "/healthz")[0] == 502  # nothing listens behind it
    with socket.create_connection((HOST, _port(nginx.url))) as sock:  # the client hangs up: 499
        sock.sendall(b"GET /drills/slow-view/?seconds=0.6 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.2)
    _raw(_port(nginx.url), (f"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {10**7}\r\n"
                            "Connection: close\r\n\r\n").encode())  # 413 at the edge
    expected = {("wsgi", "200"): 3, ("wsgi", "504"): 1, ("asgi", "502"): 2, ("wsgi", "499"): 1, ("none", "413"): 1}

    def delta():
        now = _responses(mtail)
        return {key: now[key] - before.get(key, 0) for key in now if now[key] != before.get(key, 0)}
    try:
        wait_for(lambda: delta() == expected, 10, "mtail to count the responses")
    except AssertionError:
        tail = "\n".join(nginx.access_log.read_text().splitlines()[-9:])
        raise AssertionError(f"counted {delta()}, expected {expected}; access log:\n{tail}") from None
    time.sleep(0.5)
    assert delta() == expected  # and nothing more
    assert observed("nginx_request_seconds_count") - requests_before == 5
    # Only the 504 waited long on the upstream (its 2 s read timeout); the 499 hung up at 0.2 s.
    slow = observed("nginx_upstream_response_seconds_count") - observed(
        "nginx_upstream_response_seconds_bucket", le="0.5")
    assert slow - slow_before == 1
