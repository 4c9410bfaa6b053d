"""ProfilingMiddleware on the library's own settings, under every Django and pyinstrument of the matrix
(noxfile.py: the lowest cell pins pyinstrument's floor, 5.1.3): a profile with the token, none without."""
import json
import os
import re
import sys
import time
import types

from django.http import HttpResponse
from django.test import Client
from django.urls import path

TOKEN = "library-profiling-token-0123456789abcdef"
MIDDLEWARE = ["django_celery_ops.middleware.RequestMiddleware", "django_celery_ops.profiling.ProfilingMiddleware"]


def slow_library_view(request):
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:  # busy, so every sample lands in this frame
        pass
    return HttpResponse("ok")


def test_the_token_writes_both_files_naming_the_view_and_nothing_else_does(settings, tmp_path, monkeypatch):
    urls = types.ModuleType("tests_library_profiling_urls")
    urls.urlpatterns = [path("ok/", slow_library_view)]
    monkeypatch.setitem(sys.modules, urls.__name__, urls)
    settings.ROOT_URLCONF = urls.__name__
    settings.MIDDLEWARE = MIDDLEWARE
    settings.DJANGO_CELERY_OPS = {**settings.DJANGO_CELERY_OPS, "PROFILE_DIR": str(tmp_path), "PROFILE_TOKEN": TOKEN}
    client = Client()
    assert client.get("/ok/", HTTP_X_REQUEST_ID="lib-none").status_code == 200
    assert client.get("/ok/", HTTP_X_PROFILE_TOKEN=TOKEN.upper(), HTTP_X_REQUEST_ID="lib-wrong").status_code == 200
    response = client.get("/ok/", HTTP_X_PROFILE_TOKEN=TOKEN, HTTP_X_REQUEST_ID="lib-1")
    assert response.status_code == 200 and response["X-Request-ID"] == "lib-1"
    html, speedscope = sorted(p.name for p in tmp_path.iterdir())  # <UTC time>-<pid>-<request id>
    stem = re.fullmatch(r"(\d{8}T\d{6}\.\d{6}Z-%d-lib-1)\.html" % os.getpid(), html)[1]
    assert speedscope == stem + ".speedscope.json"
    frames = json.loads((tmp_path / speedscope).read_text())["shared"]["frames"]
    assert any(f["name"] == "slow_library_view" and f["file"].endswith("tests/library/test_profiling.py") for f in frames)
    assert "<html" in (tmp_path / html).read_text().lower()
    # The same id again (X-Request-ID is the client's): a profile of its own, the first one kept.
    assert client.get("/ok/", HTTP_X_PROFILE_TOKEN=TOKEN, HTTP_X_REQUEST_ID="lib-1").status_code == 200
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 4 and html in names and speedscope in names
