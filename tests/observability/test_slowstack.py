"""The slow-request watchdog in-process: one dump per request, the view's thread found by its request.

The real-gunicorn cases (WSGI, and ASGI sync and async views) are in test_profiling.py, on the tiers
started there.
"""
import threading
import time
import types

import pytest

from django_celery_ops import slowstack


def _park(request, ready: threading.Event, release: threading.Event) -> None:
    ready.set()
    release.wait(10)  # a view "stuck" here, with its request as a local


@pytest.fixture
def view_thread():
    """A thread running a function whose frame holds a request with request_id "rid-1"."""
    ready, release = threading.Event(), threading.Event()
    request = types.SimpleNamespace(request_id="rid-1")
    thread = threading.Thread(target=_park, args=(request, ready, release), name="view-thread")
    thread.start()
    ready.wait(5)
    yield thread
    release.set()
    thread.join(5)


def test_the_thread_running_the_view_is_shown_first_then_the_serving_thread(view_thread):
    import sys

    loop_thread = threading.get_ident()  # stands for the event loop thread that began the request
    text = slowstack.stack_text({"thread_id": loop_thread, "request_id": "rid-1"}, sys._current_frames())
    first, second = text.split("\nThread ")[0], text.split("\nThread ")[1]
    assert first.startswith(f"Thread {view_thread.ident} (runs the view of this request)") and "in _park" in first
    assert second.startswith(f"{loop_thread} 'MainThread' (serving the request: the event loop)")
    # another request id: only the serving thread
    text = slowstack.stack_text({"thread_id": loop_thread, "request_id": "rid-2"}, sys._current_frames())
    assert text.count("Thread ") == 1 and "(serving the request)" in text


def test_each_slow_request_is_dumped_once_and_a_new_one_with_the_same_id_again(tmp_path, monkeypatch, view_thread):
    now = time.monotonic()
    entry = {"thread_id": view_thread.ident, "started": now - 2.0, "view": "v", "method": "GET", "path": "/p",
             "request_id": "rid-1"}
    fast = {**entry, "started": now - 0.1, "request_id": "rid-fast"}
    flight = [entry, fast]
    monkeypatch.setattr(slowstack, "in_flight", lambda: list(flight))
    dog = slowstack.Watchdog(slow_seconds=1.0, directory=str(tmp_path), keep=2)
    assert dog.check(now) == [str(tmp_path / "rid-1.txt")]
    assert dog.check(now + 0.5) == []  # still running: not again (and rid-fast not slow yet)
    text = (tmp_path / "rid-1.txt").read_text()
    assert text.startswith("slow request still running: view=v method=GET path=/p request_id=rid-1 running_seconds=2.0")
    assert "in _park" in text
    flight[:] = [fast]
    assert dog.check(now + 2) == [str(tmp_path / "rid-fast.txt")]  # now past the threshold too
    flight[:] = [{**entry, "started": now + 2}]  # the same id, a new request
    assert dog.check(now + 3.5) == [str(tmp_path / "rid-1.txt")]


def test_only_the_newest_stack_files_are_kept_and_a_bad_id_never_leaves_the_folder(tmp_path, monkeypatch):
    now = time.monotonic()
    flight = []
    monkeypatch.setattr(slowstack, "in_flight", lambda: list(flight))
    dog = slowstack.Watchdog(slow_seconds=0.5, directory=str(tmp_path / "stacks"), keep=2)
    for n in range(4):
        flight[:] = [{"thread_id": threading.get_ident(), "started": now - 1 - n, "view": "v", "method": "GET",
                      "path": "/", "request_id": f"r{n}"}]
        dog.check(now)
        time.sleep(0.01)
    assert sorted(p.name for p in (tmp_path / "stacks").iterdir()) == ["r2.txt", "r3.txt"]
    flight[:] = [{"thread_id": threading.get_ident(), "started": now - 1, "view": "v", "method": "GET", "path": "/",
                  "request_id": "../../etc/x"}]
    assert dog.check(now) == [str(tmp_path / "stacks" / "invalid-request-id.txt")]


def test_without_a_folder_the_stack_is_in_the_log_line(monkeypatch, caplog):
    import logging

    now = time.monotonic()
    monkeypatch.setattr(slowstack, "in_flight", lambda: [
        {"thread_id": threading.get_ident(), "started": now - 3, "view": "v", "method": "GET", "path": "/a\nb",
         "request_id": "rid-log"}])
    with caplog.at_level(logging.WARNING, logger="django_celery_ops.slow"):
        assert slowstack.Watchdog(1.0, "", 10).check(now) == [""]
    [record] = caplog.records
    first, rest = record.getMessage().split("\n", 1)
    assert first.startswith("slow request still running: view=v method=GET path=") and "\\n" in first  # escaped
    assert "request_id=rid-log running_seconds=3.0" in first and "in test_without_a_folder" in rest
