"""The notification inbox records Alertmanager webhooks, lists and filters them, and rejects junk."""

import json
import threading

import pytest
import requests

from ops.drills.procs import INBOX_SCRIPT, load_module, start_inbox

inbox = load_module(INBOX_SCRIPT)


def _payload(alertname="RedisDown", status="firing", severity="critical", **annotations):
    annotations = {"summary": f"{alertname} summary", "description": "d",
                   "runbook_url": f"https://example.org/runbooks/{alertname}.md",
                   "dashboard_url": "http://localhost:3000/d/celery-queues?viewPanel=10", **annotations}
    alert = {"status": status, "labels": {"alertname": alertname, "severity": severity},
             "annotations": annotations, "startsAt": "2026-01-01T00:00:00Z"}
    return {"version": "4", "status": status, "receiver": "ignored", "groupLabels": {"alertname": alertname},
            "commonLabels": alert["labels"], "alerts": [alert]}


@pytest.fixture
def server(tmp_path):
    """An inbox served from a thread of this process on a free port."""
    httpd = inbox.make_server("127.0.0.1", 0, tmp_path)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", tmp_path
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def test_post_records_one_json_line_with_receiver_and_time(server):
    url, directory = server
    response = requests.post(f"{url}/pager", json=_payload(), timeout=5)
    assert response.status_code == 200
    lines = (directory / "notifications.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["receiver"] == "pager"  # from the URL, not the body
    assert record["received_at"].endswith("+00:00")
    assert record["alerts"][0]["annotations"]["runbook_url"].endswith("/RedisDown.md")


def test_api_lists_and_filters_notifications(server):
    url, _ = server
    requests.post(f"{url}/pager", json=_payload("RedisDown"), timeout=5)
    requests.post(f"{url}/ticket", json=_payload("CeleryWorkerDown", severity="warning"), timeout=5)
    requests.post(f"{url}/ticket", json=_payload("CeleryWorkerDown", status="resolved"), timeout=5)

    def listed(**params):
        response = requests.get(f"{url}/api/notifications", params=params, timeout=5)
        assert response.status_code == 200
        return response.json()

    assert len(listed()) == 3
    assert [n["receiver"] for n in listed(receiver="pager")] == ["pager"]
    assert len(listed(alertname="CeleryWorkerDown")) == 2
    assert len(listed(alertname="CeleryWorkerDown", status="resolved")) == 1
    assert listed(receiver="deadman") == []


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'"text"'])
def test_bad_bodies_are_rejected_with_400_and_not_recorded(server, body):
    url, directory = server
    response = requests.post(f"{url}/pager", data=body, headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 400
    assert "error" in response.json()
    assert not (directory / "notifications.jsonl").exists()
    assert requests.get(f"{url}/healthz", timeout=5).text == "ok\n"  # still serving


def test_html_page_shows_alerts_with_links_and_escapes_text(server):
    url, _ = server
    requests.post(f"{url}/pager", json=_payload(summary="<script>x</script>"), timeout=5)
    page = requests.get(f"{url}/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "RedisDown" in page.text and "critical" in page.text and "firing" in page.text
    assert 'href="https://example.org/runbooks/RedisDown.md"' in page.text
    assert 'href="http://localhost:3000/d/celery-queues?viewPanel=10"' in page.text
    assert "<script>" not in page.text


def test_unknown_paths_answer_404(server):
    url, _ = server
    assert requests.get(f"{url}/nope", timeout=5).status_code == 404
    assert requests.post(f"{url}/", json=_payload(), timeout=5).status_code == 404


def test_command_line_inbox_serves_and_records(tmp_path):
    with start_inbox(tmp_path) as service:
        assert requests.get(f"{service.url}/healthz", timeout=5).status_code == 200
        assert requests.post(f"{service.url}/deadman", json=_payload("Watchdog"), timeout=5).status_code == 200
        found = requests.get(f"{service.url}/api/notifications", params={"receiver": "deadman"}, timeout=5).json()
        assert [n["alerts"][0]["labels"]["alertname"] for n in found] == ["Watchdog"]
    assert not service.alive()  # stopped
