"""Settings, all from the environment (the README's configuration table lists them).

Defaults are safe for production: DEBUG off, no default SECRET_KEY, explicit hosts, and
DEBUG or the drill endpoints refuse to start there. DJANGO_ENV=development, test or drills
relaxes only what a laptop (or the drill stack) needs.
"""
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from django_celery_ops.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

# --- Django core -------------------------------------------------------------------------
# production (the default), or a relaxed one: development, test, or drills (the fault-drill
# stack of ops/drills, the only other place the drill endpoints may be switched on).
DJANGO_ENV = env_str("DJANGO_ENV", "production")
if DJANGO_ENV not in {"production", "development", "test", "drills"}:
    raise ImproperlyConfigured(f"DJANGO_ENV={DJANGO_ENV!r} must be production, development, test or drills")
RELAXED = DJANGO_ENV != "production"

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not RELAXED:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY is required when DJANGO_ENV=production")
    SECRET_KEY = "insecure-development-key-never-use-in-production"
DEBUG = env_bool("DJANGO_DEBUG", False)
if DEBUG and not RELAXED:  # tracebacks, settings and SQL to anyone who triggers an error
    raise ImproperlyConfigured("DJANGO_DEBUG=1 is not allowed when DJANGO_ENV=production")
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
    "app.jobs",
    "app.drills",
    "django_celery_ops",
]

MIDDLEWARE = [
    # First: times everything below it. It writes django-prometheus' request families of
    # docs/metrics.md itself (its Before/After middlewares must not be added: check E005).
    "django_celery_ops.middleware.RequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Profiles on demand (docs/profiling.md): below AuthenticationMiddleware, where a staff session
    # is known; it covers the view and the middlewares below. Off (no OBS_PROFILE_TOKEN): not in the chain.
    "django_celery_ops.profiling.ProfilingMiddleware",
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
# The django_db_* metrics come from django_celery_ops (any backend, no wrapped ENGINE).
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
if JOBS_TIME_LIMIT_SECONDS <= JOBS_SOFT_TIME_LIMIT_SECONDS:
    raise ImproperlyConfigured("JOBS_TIME_LIMIT_SECONDS must be greater than JOBS_SOFT_TIME_LIMIT_SECONDS")
# Bounded cost per upload (docs/jobs.md: what the request checks, what only the task checks).
JOBS_MAX_COLUMNS = env_int("JOBS_MAX_COLUMNS", 1000, minimum=1)
JOBS_MAX_LINES = env_int("JOBS_MAX_LINES", 1_100_000, minimum=2)  # blank lines included
JOBS_SUMMARY_MAX_BYTES = env_int("JOBS_SUMMARY_MAX_BYTES", 64 * 1024, minimum=1024)  # Job.summary, compact JSON
# Recovery (docs/jobs.md): a queued job published this long ago and never started, or a retry
# overdue by this much, is published again. Keep it above the longest expected queue wait.
JOBS_REQUEUE_LOST_AFTER_SECONDS = env_int("JOBS_REQUEUE_LOST_AFTER_SECONDS", 600, minimum=1)
# After a failed publish, a web process leaves new jobs to the sweeper for this long instead of
# spending seconds per request on the broker's connection retries (0 = always try; tests).
JOBS_PUBLISH_PAUSE_SECONDS = env_float("JOBS_PUBLISH_PAUSE_SECONDS", 0.0 if DJANGO_ENV == "test" else 30.0, minimum=0)
# Deadlines per non-final state, exported as jobs_deadline_seconds{state} (JobsStuck reads them).
JOBS_DEADLINE_QUEUED_SECONDS = env_int("JOBS_DEADLINE_QUEUED_SECONDS", 900, minimum=1)
JOBS_DEADLINE_RUNNING_SECONDS = env_int("JOBS_DEADLINE_RUNNING_SECONDS", 600, minimum=1)
JOBS_DEADLINE_RETRYING_SECONDS = env_int("JOBS_DEADLINE_RETRYING_SECONDS", 900, minimum=1)
if JOBS_DEADLINE_RUNNING_SECONDS <= JOBS_TIME_LIMIT_SECONDS:
    raise ImproperlyConfigured(f"JOBS_DEADLINE_RUNNING_SECONDS={JOBS_DEADLINE_RUNNING_SECONDS} must be greater than "
                               f"JOBS_TIME_LIMIT_SECONDS={JOBS_TIME_LIMIT_SECONDS} (every normal run would be stuck)")
if JOBS_DEADLINE_RETRYING_SECONDS <= JOBS_RETRY_BACKOFF_MAX_SECONDS:
    raise ImproperlyConfigured(f"JOBS_DEADLINE_RETRYING_SECONDS={JOBS_DEADLINE_RETRYING_SECONDS} must be greater "
                               f"than JOBS_RETRY_BACKOFF_MAX_SECONDS={JOBS_RETRY_BACKOFF_MAX_SECONDS}")
# A running job is redelivered by Redis after the visibility timeout: it must outlast an attempt
# (hard time limit + the 10 s lease margin of app/jobs/services.py), or a live run is taken twice.
if CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] <= JOBS_TIME_LIMIT_SECONDS + 10:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT_SECONDS={CELERY_BROKER_TRANSPORT_OPTIONS['visibility_timeout']} must be greater "
        f"than JOBS_TIME_LIMIT_SECONDS + 10 = {JOBS_TIME_LIMIT_SECONDS + 10}")
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads spool to a temporary file

# --- API access (JOBS_API_*, HTTP limits) -------------------------------------------------
# docs/api.md explains each. Tokens are stored hashed: JOBS_API_TOKENS=name:sha256hex,...
from app.api import tokens as _tokens  # noqa: E402 (no Django imports in it)

try:
    JOBS_API_TOKENS = _tokens.parse_tokens(env_str("JOBS_API_TOKENS", ""))
    JOBS_API_RATE = _tokens.parse_rate(env_str("JOBS_API_RATE_LIMIT", "600/m"))
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
if env_str("JOBS_API_TOKEN", ""):  # the former single plaintext token: hashed here, named "default"
    JOBS_API_TOKENS += (("default", _tokens.digest(env_str("JOBS_API_TOKEN"))),)
# "required" unless switched off by name; a relaxed environment with no token stays open (local use).
JOBS_API_AUTH = env_str("JOBS_API_AUTH", "required" if (JOBS_API_TOKENS or not RELAXED) else "off")
if JOBS_API_AUTH not in {"required", "off"}:
    raise ImproperlyConfigured(f"JOBS_API_AUTH={JOBS_API_AUTH!r} must be required or off")
if JOBS_API_AUTH == "required" and not JOBS_API_TOKENS:
    raise ImproperlyConfigured("JOBS_API_TOKENS is required (name:sha256hex,...) unless JOBS_API_AUTH=off "
                               "is set explicitly (local use only)")
JOBS_API_RATE_LIMIT_CACHE_URL = env_str("JOBS_API_RATE_LIMIT_CACHE_URL", CELERY_BROKER_URL)
JOBS_API_MAX_JSON_BYTES = env_int("JOBS_API_MAX_JSON_BYTES", 64 * 1024, minimum=2)
JOBS_API_MAX_JSON_DEPTH = env_int("JOBS_API_MAX_JSON_DEPTH", 8, minimum=1)
JOBS_PUBLIC_BASE_URL = env_str("JOBS_PUBLIC_BASE_URL", "").rstrip("/")
if JOBS_PUBLIC_BASE_URL and not JOBS_PUBLIC_BASE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured("JOBS_PUBLIC_BASE_URL must start with http:// or https://")
# Peers whose X-Forwarded-* headers count (OBS_TRUSTED_PROXIES): DJANGO_CELERY_OPS["TRUSTED_PROXIES"] below.
# One HTTP strictness on both tiers: the ASGI guard applies gunicorn's own limits (same names).
HTTP_LIMIT_REQUEST_LINE = env_int("GUNICORN_LIMIT_REQUEST_LINE", 4094, minimum=64)
HTTP_LIMIT_REQUEST_FIELDS = env_int("GUNICORN_LIMIT_REQUEST_FIELDS", 100, minimum=4)
HTTP_LIMIT_REQUEST_FIELD_SIZE = env_int("GUNICORN_LIMIT_REQUEST_FIELD_SIZE", 8190, minimum=64)
# The multipart envelope around the file; a body above upload limit + this gets 413 unread.
JOBS_API_MULTIPART_OVERHEAD_BYTES = 16 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DJANGO_DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024, minimum=1024)
FILE_UPLOAD_TEMP_DIR = str(VAR_DIR / "spool")  # bounded: workers x threads x the upload limit, cleaned at start
try:
    Path(FILE_UPLOAD_TEMP_DIR).mkdir(parents=True, exist_ok=True, mode=0o700)
except OSError:
    pass  # Django's check files.E001 names the folder
FILE_UPLOAD_HANDLERS = ["app.api.uploads.CappedMemoryUploadHandler", "app.api.uploads.CappedTemporaryUploadHandler"]
FILE_UPLOAD_PERMISSIONS = 0o600
JOBS_SPOOL_STALE_SECONDS = env_int("JOBS_SPOOL_STALE_SECONDS", 600, minimum=1)
CSRF_FAILURE_VIEW = "app.errors.csrf_failure"
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # Rate-limit windows shared by every worker of both tiers; a cache outage fails open (counted).
    "api": ({"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api"}
            if JOBS_API_RATE_LIMIT_CACHE_URL.startswith("locmem") else
            {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": JOBS_API_RATE_LIMIT_CACHE_URL,
             "KEY_PREFIX": "jobs-api", "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}}),
}

# --- Drills (DRILLS_*) -------------------------------------------------------------------
DRILLS_ENABLED = env_bool("DRILLS_ENABLED", False)
if DRILLS_ENABLED and not RELAXED:  # endpoints that sleep, burn CPU and raise on request
    raise ImproperlyConfigured("DRILLS_ENABLED=1 is not allowed when DJANGO_ENV=production (use DJANGO_ENV=drills)")
DRILLS_TIMEOUT_SLEEP_SECONDS = env_float("DRILLS_TIMEOUT_SLEEP_SECONDS", 60.0, minimum=0)

# --- Observability (OBS_*, SENTRY_*): the library's one settings dict ------------------------
# docs/web-observability.md explains each key and its default. Metric storage:
# PROMETHEUS_MULTIPROC_DIR (one per tier; the library's system checks look at it).
SENTRY_TRACES_SAMPLE_RATE = env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0, minimum=0)
if SENTRY_TRACES_SAMPLE_RATE > 1:
    raise ImproperlyConfigured("SENTRY_TRACES_SAMPLE_RATE must be between 0 and 1")
DJANGO_CELERY_OPS = {
    "SLOW_REQUEST_SECONDS": env_float("OBS_SLOW_REQUEST_SECONDS", 1.0, minimum=0.001),
    # LATENCY_BUCKETS left at its default: django-prometheus' buckets plus the slow threshold.
    "LOOP_LAG_INTERVAL_SECONDS": env_float("OBS_LOOP_LAG_INTERVAL_SECONDS", 0.1, minimum=0.005),
    "LOOP_LAG_LOG_SECONDS": env_float("OBS_LOOP_LAG_LOG_SECONDS", 0.5, minimum=0.01),
    "TRUSTED_PROXIES": env_list("OBS_TRUSTED_PROXIES", []),
    # Profiles on demand: a request with X-Profile-Token: $OBS_PROFILE_TOKEN (none set: never by header),
    # or a staff session asking with ?_profile=1 when OBS_PROFILE_STAFF=1; files under var/profiles/.
    "PROFILE_DIR": env_str("OBS_PROFILE_DIR", str(VAR_DIR / "profiles")),
    "PROFILE_TOKEN": env_str("OBS_PROFILE_TOKEN", ""),
    "PROFILE_STAFF": env_bool("OBS_PROFILE_STAFF", False),
    "PROFILE_KEEP": env_int("OBS_PROFILE_KEEP", 50, minimum=1),
    # Stacks of requests still running past the slow threshold, one file each under var/stacks/.
    "SLOW_STACKS": env_bool("OBS_SLOW_STACKS", True),
    "STACKS_DIR": env_str("OBS_STACKS_DIR", str(VAR_DIR / "stacks")),
    "STACKS_KEEP": env_int("OBS_STACKS_KEEP", 200, minimum=1),
    # The alerts' slow threshold must be the app's (check W009 compares them).
    "MONITORING_CONFIG": env_str("OBS_MONITORING_CONFIG", str(BASE_DIR / "ops" / "monitoring.yml")),
    "SENTRY": {
        "DSN": env_str("SENTRY_DSN", ""),
        "ENVIRONMENT": env_str("SENTRY_ENVIRONMENT", DJANGO_ENV),
        "RELEASE": env_str("SENTRY_RELEASE", "") or None,
        # Errors only by default: tracing even 1 % of requests costs every request (docs/web-observability.md).
        "TRACES_SAMPLE_RATE": SENTRY_TRACES_SAMPLE_RATE,
    },
}
del SENTRY_TRACES_SAMPLE_RATE
