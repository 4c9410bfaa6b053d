"""The slow-request watchdog in-process: one dump per request, the view's thread found by its request.

The real-gunicorn cases (WSGI, and ASGI sync and async views) are in test_profiling.py, on the tiers
started there.
"""
import os
import re
import threading
import time
import types
from pathlib import Path

import pytest

from django_celery_ops import profiling, slowstack

STEM = r"\d{8}T\d{6}\.\d{6}Z-%d-" % os.getpid()  # <UTC time>-<pid>- then the request id


def _rid_of(path: str) -> str:
    """The request id in a stack file's name (asserting the name's form)."""
    name = os.path.basename(path)
    assert re.fullmatch(STEM + r"[A-Za-z0-9._:~-]+\.txt", name), name
    return name.split("-", 2)[2][:-len(".txt")]


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


def test_each_slow_request_is_dumped_once_and_a_new_one_with_the_same_id_in_a_file_of_its_own(
        tmp_path, monkeypatch, view_thread):
    now = time.monotonic()
    entry = {"thread_id": view_thread.ident, "started": now - 2.0, "view": "v", "method": "GET", "path": "/p",
             "request_id": "rid-1"}
    fast = {**entry, "started": now - 0.1, "request_id": "rid-fast"}
    flight = [entry, fast]
    monkeypatch.setattr(slowstack, "in_flight", lambda: list(flight))
    dog = slowstack.Watchdog(slow_seconds=1.0, directory=str(tmp_path), keep=5)
    [first] = dog.check(now)
    assert os.path.dirname(first) == str(tmp_path) and _rid_of(first) == "rid-1"
    assert dog.check(now + 0.5) == []  # still running: not again (and rid-fast not slow yet)
    text = Path(first).read_text()
    assert text.startswith("slow request still running: view=v method=GET path=/p request_id=rid-1 running_seconds=2.0")
    assert "in _park" in text
    assert os.stat(first).st_mode & 0o777 == 0o600  # code paths: this user only
    flight[:] = [fast]
    [fast_file] = dog.check(now + 2)  # now past the threshold too
    assert _rid_of(fast_file) == "rid-fast"
    flight[:] = [{**entry, "started": now + 2, "path": "/again"}]  # the same id (the client's), a new request
    [again] = dog.check(now + 3.5)
    assert again != first and _rid_of(again) == "rid-1" and "path=/again" in Path(again).read_text()
    assert Path(first).read_text() == text  # the first request's stack is still there, untouched
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in (first, fast_file, again))


def test_a_taken_name_is_never_written_through_the_next_free_one_is_used(tmp_path, monkeypatch):
    """The same id, pid and microsecond (or a file planted there): O_EXCL, the file or link left as it was."""
    stem = f"20260101T000000.000000Z-{os.getpid()}-same"
    monkeypatch.setattr(profiling, "file_stem", lambda rid: stem)
    taken = tmp_path / f"{stem}.txt"
    target = tmp_path / "elsewhere"
    target.write_text("not yours")
    taken.symlink_to(target)  # a planted link: following it would overwrite another file
    now = time.monotonic()
    flight = [{"thread_id": threading.get_ident(), "started": now - 2, "view": "v", "method": "GET", "path": "/",
               "request_id": "same"}]
    monkeypatch.setattr(slowstack, "in_flight", lambda: list(flight))
    [one] = slowstack.Watchdog(1.0, str(tmp_path), 10).check(now)
    [two] = slowstack.Watchdog(1.0, str(tmp_path), 10).check(now)  # another watchdog, the same instant
    assert (one, two) == (str(tmp_path / f"{stem}~1.txt"), str(tmp_path / f"{stem}~2.txt"))
    assert target.read_text() == "not yours" and taken.is_symlink()
    assert "request_id=same" in Path(one).read_text() and "request_id=same" in Path(two).read_text()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


def test_only_the_newest_stack_files_are_kept_and_a_bad_id_never_leaves_the_folder(tmp_path, monkeypatch):
    now = time.monotonic()
    flight = []
    monkeypatch.setattr(slowstack, "in_flight", lambda: list(flight))
    folder = tmp_path / "stacks"
    dog = slowstack.Watchdog(slow_seconds=0.5, directory=str(folder), keep=2)
    for n in range(4):
        flight[:] = [{"thread_id": threading.get_ident(), "started": now - 1 - n, "view": "v", "method": "GET",
                      "path": "/", "request_id": f"r{n}"}]
        dog.check(now)
        time.sleep(0.01)
    assert [_rid_of(name) for name in sorted(os.listdir(folder))] == ["r2", "r3"]  # names sort by time
    for rid, named in (("../../etc/x", "invalid-request-id"), ("..", "..")):
        flight[:] = [{"thread_id": threading.get_ident(), "started": now - 1, "view": "v", "method": "GET",
                      "path": "/", "request_id": rid}]
        [path] = dog.check(now)
        assert os.path.dirname(path) == str(folder) and _rid_of(path) == named and os.path.isfile(path)


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
