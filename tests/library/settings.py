"""Minimal settings of the library's own tests: Django's contrib apps and django_celery_ops, nothing of app/.

    pytest tests/library --ds=tests.library.settings

Run under every Django the library supports (noxfile.py's matrix); the demo app stays on its own
settings (tests/settings.py).
"""
SECRET_KEY = "django-celery-ops-library-tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_celery_ops",
]
MIDDLEWARE = ["django_celery_ops.middleware.RequestMiddleware"]
ROOT_URLCONF = "tests.library.urls"
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    # A third-party backend (a subclass of SQLite's, with its own vendor name): counted like any other.
    "custom": {"ENGINE": "tests.library.custom_backend", "NAME": ":memory:", "TEST": {"NAME": ":memory:"}},
}
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [], "APP_DIRS": False,
              "OPTIONS": {"loaders": [("django.template.loaders.locmem.Loader", {"page.html": "<p>{{ n }}</p>"})]}}]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
DJANGO_CELERY_OPS = {"SLOW_REQUEST_SECONDS": 0.5}
