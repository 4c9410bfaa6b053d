"""SCRAPE_VIEWS trivial views named bench_view_0000, ... (bench/scrape/writers.py sends one request to each)."""
import os

from django.http import HttpResponse
from django.urls import path


def _view(request):
    return HttpResponse(b"ok", content_type="text/plain")


urlpatterns = [path(f"v{i}/", _view, name=f"bench_view_{i:04d}") for i in range(int(os.environ.get("SCRAPE_VIEWS", "10")))]
