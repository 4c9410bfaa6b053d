"""Settings, all from the environment (the README's configuration table lists them).

Defaults are safe for production: DEBUG off, no default SECRET_KEY, explicit hosts.
DJANGO_ENV=development (or test) relaxes only what a laptop needs.
"""
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from app.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Django core -------------------------------------------------------------------------
DJANGO_ENV = env_str("DJANGO_ENV", "production")
if DJANGO_ENV not in {"production", "development", "test"}:
    raise ImproperlyConfigured(f"DJANGO_ENV={DJANGO_ENV!r} must be production, development or test")
RELAXED = DJANGO_ENV != "production"

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not RELAXED:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_ENV=production")
    SECRET_KEY = "insecure-development-key-never-use-in-production"
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if RELAXED else [])
if not ALLOWED_HOSTS and not RELAXED:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS is required when DJANGO_ENV=production")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

VAR_DIR = Path(env_str("OPS_VAR_DIR", str(BASE_DIR / "var"))).resolve()
MEDIA_ROOT = Path(env_str("DJANGO_MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # not served: results go through the jobs API, which checks the job
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STATIC_URL = "/static/"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "app.jobs",
    "app.drills",
    "app.observability",
]

MIDDLEWARE = [
    # First: times everything below it. It also writes django-prometheus' request families of
    # docs/metrics.md (in place of its Before/After middlewares, which must not be added).
    "app.observability.middleware.RequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "app.urls"
WSGI_APPLICATION = "app.wsgi.application"
ASGI_APPLICATION = "app.asgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# --- Database ----------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except (ValueError, KeyError) as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.sqlite3", "django_prometheus.db.backends.sqlite3"
).replace("django.db.backends.postgresql", "django_prometheus.db.backends.postgresql")
if "sqlite3" in DATABASES["default"]["ENGINE"]:
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Web and task processes write at once: WAL lets readers go on during a write,
    # IMMEDIATE takes the write lock up front (no deadlocked lock upgrades), and the
    # busy timeout makes a writer wait instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env_float("DJANGO_SQLITE_BUSY_TIMEOUT_SECONDS", 30.0, minimum=0),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Security ----------------------------------------------------------------------------
# Behind a TLS-terminating proxy; the local stack (plain HTTP on loopback) turns these off.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not RELAXED)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes speak plain HTTP inside the pod
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", not RELAXED)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0 if RELAXED else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
# HSTS preload is a commitment to browser vendors: opt-in only, hence the silenced check.
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
X_FRAME_OPTIONS = "DENY"

# --- Logging -----------------------------------------------------------------------------
LOG_LEVEL = env_str("DJANGO_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.request": {"level": "ERROR"}},
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Celery (CELERY_*) -------------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue("default"), Queue("imports"), Queue("exports")]
CELERY_TASK_ROUTES = {
    "jobs.process_import": {"queue": "imports"},
    "jobs.process_export": {"queue": "exports"},
}
CELERY_TASK_IGNORE_RESULT = True  # job state lives in the Job row, not a result backend
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # long tasks: a worker takes only what it can start
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_TASK_TRACK_STARTED = True
CELERY_WORKER_MAX_TASKS_PER_CHILD = env_int("CELERY_WORKER_MAX_TASKS_PER_CHILD", 1000, minimum=0) or None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Longer than the hardest time limit, or Redis hands a running task to a second worker.
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_SECONDS", 3600, minimum=60),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
if env_str("CELERY_BROKER_KEY_PREFIX", ""):  # Redis: share one database between stacks
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env_str("CELERY_BROKER_KEY_PREFIX")

# --- Jobs (JOBS_*) -----------------------------------------------------------------------
JOBS_MAX_UPLOAD_BYTES = env_int("JOBS_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, minimum=1)
JOBS_MAX_ROWS = env_int("JOBS_MAX_ROWS", 1_000_000, minimum=1)
JOBS_RETRY_BACKOFF_SECONDS = env_float("JOBS_RETRY_BACKOFF_SECONDS", 2.0, minimum=0.01)
JOBS_RETRY_BACKOFF_MAX_SECONDS = env_float("JOBS_RETRY_BACKOFF_MAX_SECONDS", 300.0, minimum=0.01)
JOBS_MAX_RETRIES = env_int("JOBS_MAX_RETRIES", 5, minimum=0)
JOBS_SOFT_TIME_LIMIT_SECONDS = env_int("JOBS_SOFT_TIME_LIMIT_SECONDS", 300, minimum=1)
JOBS_TIME_LIMIT_SECONDS = env_int("JOBS_TIME_LIMIT_SECONDS", 330, minimum=2)
JOBS_RATE_LIMIT = env_str("JOBS_RATE_LIMIT", "60/m")
JOBS_ENQUEUE_RETRY_SECONDS = env_float("JOBS_ENQUEUE_RETRY_SECONDS", 5.0, minimum=0.1)
JOBS_API_TOKEN = env_str("JOBS_API_TOKEN", "")
if JOBS_TIME_LIMIT_SECONDS <= JOBS_SOFT_TIME_LIMIT_SECONDS:
    raise ImproperlyConfigured("JOBS_TIME_LIMIT_SECONDS must be greater than JOBS_SOFT_TIME_LIMIT_SECONDS")
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads spool to a temporary file

# --- Drills (DRILLS_*) -------------------------------------------------------------------
DRILLS_ENABLED = env_bool("DRILLS_ENABLED", False)
DRILLS_TIMEOUT_SLEEP_SECONDS = env_float("DRILLS_TIMEOUT_SLEEP_SECONDS", 60.0, minimum=0)

# --- Observability (OBS_*, SENTRY_*) -----------------------------------------------------
# docs/web-observability.md explains each. Metric storage: PROMETHEUS_MULTIPROC_DIR (one per tier).
OBS_SLOW_REQUEST_SECONDS = env_float("OBS_SLOW_REQUEST_SECONDS", 1.0, minimum=0.001)
OBS_LOOP_LAG_INTERVAL_SECONDS = env_float("OBS_LOOP_LAG_INTERVAL_SECONDS", 0.1, minimum=0.005)
OBS_LOOP_LAG_LOG_SECONDS = env_float("OBS_LOOP_LAG_LOG_SECONDS", 0.5, minimum=0.01)
# django-prometheus' default buckets, plus the slow threshold so that le="<threshold>" exists.
PROMETHEUS_LATENCY_BUCKETS = tuple(sorted({
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 25.0, 50.0, 75.0,
    OBS_SLOW_REQUEST_SECONDS})) + (float("inf"),)
SENTRY_DSN = env_str("SENTRY_DSN", "")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", DJANGO_ENV)
SENTRY_RELEASE = env_str("SENTRY_RELEASE", "") or None
# Errors only by default: tracing even 1 % of requests costs every request (docs/web-observability.md).
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0)
if SENTRY_TRACES_SAMPLE_RATE > 1:
    raise ImproperlyConfigured("SENTRY_TRACES_SAMPLE_RATE must be between 0 and 1")
