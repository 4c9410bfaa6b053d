"""Bench-only settings: the app with SCRAPE_VIEWS generated views (bench/scrape/urls.py); never used by the app."""
from app.settings import *  # noqa: F403

ROOT_URLCONF = "bench.scrape.urls"
