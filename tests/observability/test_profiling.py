"""Profiles on demand (ProfilingMiddleware) and the stacks of slow requests still running (slowstack).

The integration tests share one real WSGI tier (gunicorn, 2 sync workers) per module: a 0.5 s slow
threshold, a gunicorn timeout of 20 s, a profiling token and the folders under its var/.
"""
import json
import re
import threading
import time
from pathlib import Path

import pytest
import requests
from django.test import Client

from django_celery_ops import profiling
from tests.support import stack, web

TOKEN = "t0ken-for-the-profiling-tests-0123456789abcdef"


@pytest.fixture(scope="module")
def tier(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("profiling") / "var"
    (var_dir / "run").mkdir(parents=True)
    procs: list = []
    try:
        yield web.start_tier(procs, var_dir, workers=2, GUNICORN_TIMEOUT="20", OBS_SLOW_REQUEST_SECONDS="0.5",
                             OBS_PROFILE_TOKEN=TOKEN, OBS_PROFILE_KEEP="3")
    finally:
        for proc in reversed(procs):
            proc.stop()


def _var(tier) -> Path:
    return tier.metrics_dir.parents[1]


def _named(folder: Path, rid: str, suffix: str) -> list[Path]:
    """The files of request id rid in folder, named <UTC time>-<pid>-<rid><suffix> (profiling.file_stem)."""
    form = re.compile(r"\d{8}T\d{6}\.\d{6}Z-\d+-" + re.escape(rid) + r"(~\d+)?" + re.escape(suffix))
    return sorted(p for p in folder.iterdir() if form.fullmatch(p.name)) if folder.is_dir() else []


def _rids(folder: Path, suffix: str) -> list[str]:
    """The request ids of folder's files ending in suffix, in name order (= time order)."""
    return [p.name.split("-", 2)[2][:-len(suffix)] for p in sorted(folder.iterdir()) if p.name.endswith(suffix)]


def _one(folder: Path, rid: str, suffix: str) -> Path:
    [path] = _named(folder, rid, suffix)
    return path


@pytest.mark.integration
def test_a_request_with_the_token_is_profiled_and_the_profile_names_the_slow_view(tier):
    response = requests.get(f"{tier.url}/drills/slow-view/?seconds=0.6", timeout=10,
                            headers={"X-Profile-Token": TOKEN, "X-Request-ID": "prof-slow-1"})
    assert response.ok and response.headers["X-Request-ID"] == "prof-slow-1"
    html = _one(_var(tier) / "profiles", "prof-slow-1", ".html")
    speedscope = json.loads(html.with_name(html.name[:-len(".html")] + ".speedscope.json").read_text())
    names = {frame["name"] for frame in speedscope["shared"]["frames"]}
    assert "slow_view" in names, sorted(names)[:40]
    assert any(f["name"] == "slow_view" and f["file"].endswith("app/drills/views.py")
               for f in speedscope["shared"]["frames"])
    assert "slow_view" in html.read_text()
    log = tier.gunicorn.log()
    assert "profile written request_id=prof-slow-1 " in log
    # the slow-request line (RequestMiddleware, over the 0.5 s threshold) points to the profile
    [slow] = [line for line in log.splitlines() if "slow request view=" in line and "request_id=prof-slow-1" in line]
    assert slow.endswith(f"profile={html}")


@pytest.mark.integration
@pytest.mark.parametrize("rid, headers", [
    pytest.param("noprof-none", {}, id="no-token"),
    pytest.param("noprof-wrong", {"X-Profile-Token": TOKEN[:-1] + "x"}, id="wrong-token-same-length"),
    pytest.param("noprof-short", {"X-Profile-Token": "guess"}, id="wrong-token-short"),
    pytest.param("noprof-empty", {"X-Profile-Token": ""}, id="empty-token"),
])
def test_no_profile_is_written_without_the_token(tier, rid, headers):
    # ?_profile=1 is the staff opt-in: an anonymous request asking with it is not profiled either
    response = requests.get(f"{tier.url}/drills/slow-view/?seconds=0&_profile=1", timeout=10,
                            headers={**headers, "X-Request-ID": rid})
    assert response.ok and response.headers["X-Request-ID"] == rid
    assert not list((_var(tier) / "profiles").glob(f"*{rid}*"))
    assert f"request_id={rid} " not in tier.gunicorn.log()


@pytest.mark.integration
def test_only_the_newest_profiles_are_kept(tier):
    for n in range(5):
        assert requests.get(f"{tier.url}/healthz", timeout=10,
                            headers={"X-Profile-Token": TOKEN, "X-Request-ID": f"keep-{n}"}).ok
        time.sleep(0.01)  # distinct modification times
    profiles = _var(tier) / "profiles"
    assert _rids(profiles, ".html")[-3:] == ["keep-2", "keep-3", "keep-4"]  # PROFILE_KEEP=3
    assert len(_rids(profiles, ".html")) == 3
    assert _rids(profiles, ".speedscope.json") == _rids(profiles, ".html")  # each with its companion


@pytest.mark.integration
def test_prune_keeps_the_newest_and_sweeps_temp_files_of_killed_writers(tmp_path):
    """A writer killed between its hidden temp file and the link leaves the temp: the next prune
    removes it once it is old; a writer's fresh temp file and the newest profiles stay."""
    import os

    for i in range(4):
        profiling.write_new(str(tmp_path), f"r{i}", {".html": "x", ".speedscope.json": "{}"})
        time.sleep(0.01)
    old_tmp, fresh_tmp = tmp_path / ".a.html.0001.tmp", tmp_path / ".b.html.0002.tmp"
    old_tmp.write_text("half"), fresh_tmp.write_text("half")
    os.utime(old_tmp, (time.time() - profiling.STALE_TMP_SECONDS - 1,) * 2)
    profiling.prune(str(tmp_path), ".html", 2, (".speedscope.json",))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert fresh_tmp.name in left and old_tmp.name not in left
    assert sorted(n.split("-")[-1] for n in left if n.endswith(".html")) == ["r2.html", "r3.html"]
    assert len([n for n in left if n.endswith(".speedscope.json")]) == 2


def test_a_request_reusing_an_id_gets_a_profile_of_its_own(tier):
    """X-Request-ID is the client's: a second request with the same id never overwrites the first's profile."""
    for seconds in ("0.05", "0.06"):
        assert requests.get(f"{tier.url}/drills/slow-view/?seconds={seconds}", timeout=10,
                            headers={"X-Profile-Token": TOKEN, "X-Request-ID": "reused-1"}).ok
    first, second = _named(_var(tier) / "profiles", "reused-1", ".html")  # PROFILE_KEEP=3: both kept
    assert first.stat().st_mode & 0o777 == 0o600 and second.stat().st_mode & 0o777 == 0o600
    assert len(_named(_var(tier) / "profiles", "reused-1", ".speedscope.json")) == 2


@pytest.mark.integration
def test_a_sleeping_view_has_its_stack_written_while_it_still_runs(tier):
    answers = []

    def call():
        answers.append(requests.get(f"{tier.url}/drills/slow-view/?seconds=2", timeout=30,
                                    headers={"X-Request-ID": "stuck-1"}))

    caller = threading.Thread(target=call)
    caller.start()
    stack.wait_for(lambda: _named(_var(tier) / "stacks", "stuck-1", ".txt"), 10,
                   "the stack file of the running request", interval=0.05)
    path = _one(_var(tier) / "stacks", "stuck-1", ".txt")
    # The threshold is 0.5 s, the view sleeps 2 s, the timeout is 20 s: the file exists while it runs.
    assert caller.is_alive() and not answers, "the stack must be taken while the request still runs"
    text = path.read_text()
    assert "request_id=stuck-1" in text and "view=drills:slow-view" in text
    assert "in slow_view" in text and "time.sleep(seconds)" in text
    caller.join(30)
    assert answers and answers[0].ok
    log = tier.gunicorn.log()
    [line] = [line for line in log.splitlines() if "request_id=stuck-1 running_seconds=" in line]  # one dump
    assert "slow request still running: view=drills:slow-view" in line
    assert f"stack={path}" in log


# --- in-process: the switch, the staff opt-in, the cost when off ------------------------------------

def test_without_a_token_or_staff_profiling_the_middleware_leaves_the_chain(settings):
    from django.core.exceptions import MiddlewareNotUsed

    settings.DJANGO_CELERY_OPS = {**settings.DJANGO_CELERY_OPS, "PROFILE_TOKEN": "", "PROFILE_STAFF": False}
    with pytest.raises(MiddlewareNotUsed):
        profiling.ProfilingMiddleware(lambda request: None)
    settings.DJANGO_CELERY_OPS = {**settings.DJANGO_CELERY_OPS, "PROFILE_TOKEN": TOKEN, "PROFILE_DIR": ""}
    with pytest.raises(MiddlewareNotUsed):
        profiling.ProfilingMiddleware(lambda request: None)


@pytest.fixture
def profiled(settings, tmp_path):
    settings.DRILLS_ENABLED = True
    settings.DJANGO_CELERY_OPS = {**settings.DJANGO_CELERY_OPS, "PROFILE_DIR": str(tmp_path), "PROFILE_TOKEN": TOKEN,
                                  "PROFILE_STAFF": True}
    return tmp_path


@pytest.mark.django_db
def test_a_staff_session_asking_is_profiled_a_plain_user_and_an_unasking_staff_are_not(profiled):
    from django.contrib.auth.models import User

    staff = User.objects.create_user("staff", password="pw", is_staff=True)
    plain = User.objects.create_user("plain", password="pw")
    client = Client()
    client.force_login(plain)
    assert client.get("/healthz?_profile=1", HTTP_X_REQUEST_ID="plain-1").status_code == 200
    client.force_login(staff)
    assert client.get("/healthz", HTTP_X_REQUEST_ID="staff-unasked").status_code == 200
    assert client.get("/healthz?_profile=1", HTTP_X_REQUEST_ID="staff-1").status_code == 200
    assert _rids(profiled, ".html") == ["staff-1"] and _rids(profiled, ".speedscope.json") == ["staff-1"]
    assert len(list(profiled.iterdir())) == 2


def test_the_profile_path_is_on_the_request_for_the_slow_request_log(profiled, rf):
    from django.http import HttpResponse

    def get_response(request):
        time.sleep(0.01)
        return HttpResponse()

    middleware = profiling.ProfilingMiddleware(get_response)
    request = rf.get("/x", HTTP_X_PROFILE_TOKEN=TOKEN, HTTP_X_REQUEST_ID="attr-1")
    middleware(request)
    html = _one(profiled, "attr-1", ".html")
    assert request.django_celery_ops_profile == str(html)
    assert html.stat().st_mode & 0o777 == 0o600  # code paths and timings: this user only
    unasked = rf.get("/x", HTTP_X_REQUEST_ID="attr-2")
    middleware(unasked)
    assert not hasattr(unasked, "django_celery_ops_profile") and not _named(profiled, "attr-2", ".html")


def test_off_costs_about_a_dict_lookup_per_request(profiled, rf):
    """Present with a token, on a request without the header: one META lookup over the bare call."""
    import timeit

    from django.http import HttpResponse

    response = HttpResponse()

    def get_response(request):
        return response

    middleware = profiling.ProfilingMiddleware(get_response)
    middleware.staff = False  # the demo's default: token only
    request = rf.get("/x")
    n = 200_000
    bare = min(timeit.repeat(lambda: get_response(request), number=n, repeat=5)) / n
    wrapped = min(timeit.repeat(lambda: middleware(request), number=n, repeat=5)) / n
    cost_us = (wrapped - bare) * 1e6
    print(f"\nProfilingMiddleware off: {cost_us:.3f} us per request over the bare call")
    assert cost_us < 2.0  # a request of the trivial view costs ~300 us in gunicorn: well under 1 %


def test_pyinstrument_is_not_imported_until_a_request_is_profiled(tmp_path):
    import subprocess
    import sys

    code = f"""
import sys
import django
from django.conf import settings
settings.configure(DJANGO_CELERY_OPS={{"PROFILE_DIR": {str(tmp_path)!r}, "PROFILE_TOKEN": {TOKEN!r}}},
                   ALLOWED_HOSTS=["testserver"], INSTALLED_APPS=[])
django.setup()
from django.http import HttpResponse
from django.test import RequestFactory
from django_celery_ops import profiling
mw = profiling.ProfilingMiddleware(lambda request: HttpResponse())
mw(RequestFactory().get("/", HTTP_X_PROFILE_TOKEN="wrong"))
mw(RequestFactory().get("/"))
print("before", "pyinstrument" in sys.modules)
mw(RequestFactory().get("/", HTTP_X_PROFILE_TOKEN={TOKEN!r}, HTTP_X_REQUEST_ID="lazy-1"))
print("after", "pyinstrument" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["before", "False", "after", "True"]
    assert _named(tmp_path, "lazy-1", ".html")


# --- the ASGI tier: a sync view runs in a thread, an async view in the loop ------------------------

@pytest.fixture(scope="module")
def asgi_tier(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("profiling-asgi") / "var"
    (var_dir / "run").mkdir(parents=True)
    procs: list = []
    try:
        yield web.start_tier(procs, var_dir, name="asgi", asgi=True, workers=1, GUNICORN_TIMEOUT="20",
                             OBS_SLOW_REQUEST_SECONDS="0.5", OBS_LOOP_LAG_LOG_SECONDS="30", OBS_PROFILE_TOKEN=TOKEN)
    finally:
        for proc in reversed(procs):
            proc.stop()


@pytest.mark.integration
@pytest.mark.parametrize("drill, function", [("slow-view", "slow_view"), ("blocking-async", "blocking_async"),
                                             ("nonblocking-async", "nonblocking_async")])
def test_asgi_profiles_name_the_view_sync_in_its_thread_async_in_the_loop(asgi_tier, drill, function):
    rid = f"asgi-prof-{drill}"
    response = requests.get(f"{asgi_tier.url}/drills/{drill}/?seconds=0.3", timeout=10,
                            headers={"X-Profile-Token": TOKEN, "X-Request-ID": rid})
    assert response.ok
    speedscope = json.loads(_one(_var(asgi_tier) / "profiles", rid, ".speedscope.json").read_text())
    names = {frame["name"] for frame in speedscope["shared"]["frames"]}
    assert function in names, sorted(names)[:60]
    assert not list((_var(asgi_tier) / "profiles").glob("noprof*"))


@pytest.mark.integration
@pytest.mark.parametrize("drill, function, thread", [
    ("slow-view", "slow_view", "runs the view of this request"),  # a sync view: its thread, then the loop's
    ("blocking-async", "blocking_async", "serving the request"),  # the loop thread itself, blocked
])
def test_asgi_slow_requests_have_their_stack_written_while_running(asgi_tier, drill, function, thread):
    rid = f"asgi-stuck-{drill}"
    caller = threading.Thread(target=requests.get, args=(f"{asgi_tier.url}/drills/{drill}/?seconds=2",),
                              kwargs={"timeout": 30, "headers": {"X-Request-ID": rid}})
    caller.start()
    stack.wait_for(lambda: _named(_var(asgi_tier) / "stacks", rid, ".txt"), 10,
                   "the stack file of the running request", interval=0.05)
    path = _one(_var(asgi_tier) / "stacks", rid, ".txt")
    assert caller.is_alive()
    text = path.read_text()
    first = text.split("\n\nThread", 2)[1]  # the first thread shown
    assert thread in first.splitlines()[0] and f"in {function}" in first and "time.sleep(seconds)" in first
    caller.join(30)
