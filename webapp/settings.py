"""PathDesk settings: one file, driven by environment variables (see README, "Configuration").

Defaults are the embedded mode (`make demo`): SQLite file, local media folder, Redis on localhost.
Production sets DATABASE_URL, REDIS_URL, MEDIA_ROOT, SECRET_KEY, ALLOWED_HOSTS and DEBUG=0.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from webapp.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PATHDESK_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG and env_bool("PATHDESK_REQUIRE_SECRET_KEY", True):
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off (or set DEBUG=1 for local use)")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "webapp.accounts",
    "webapp.cases",
    "webapp.wsi",
    "webapp.annotations",
    "webapp.audit",
    "webapp.analysis",
    "webapp.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, API docs) straight from the app server; `collectstatic` runs in the image.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "webapp.urls"
ASGI_APPLICATION = "webapp.asgi.application"
AUTH_USER_MODEL = "accounts.User"

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
            ],
        },
    },
]

DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'pathdesk.sqlite3'}"))}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every sync request runs in a thread of its own, so per-thread persistent connections
    # would pile up (one per request thread): use psycopg's pool instead, per process.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN", 1, minimum=0),
        "max_size": env_int("DATABASE_POOL_MAX", 8, minimum=1),
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 15, minimum=1),
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # The demo runs a web server and a worker against one file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(VAR_DIR / "static")))
# Without a collectstatic run (demo, tests) files are found in the apps directly.
WHITENOISE_USE_FINDERS = True
FRONTEND_DIST = Path(env_str("FRONTEND_DIST", str(BASE_DIR / "frontend" / "dist")))

# Slide storage: a shared filesystem mounted on web and workers (see docker-compose.yml).
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
SLIDE_UPLOAD_MAX_BYTES = env_int("SLIDE_UPLOAD_MAX_BYTES", 20 * 1024**3, minimum=1)
# Uploads stream through handlers that write to disk: nothing large is ever held in memory.
FILE_UPLOAD_HANDLERS = ["webapp.wsi.uploads.SlideUploadHandler"]
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

# Tile cache: Redis, keyed by slide sha256 + tile address, bounded by TILE_CACHE_MAX_BYTES
# (oldest tiles evicted first; see webapp/wsi/tilecache.py). TILE_CACHE_URL may name a separate Redis.
TILE_CACHE_URL = env_str("TILE_CACHE_URL", REDIS_URL)
TILE_CACHE_MAX_BYTES = env_int("TILE_CACHE_MAX_BYTES", 512 * 1024**2, minimum=0)
TILE_JPEG_QUALITY = env_int("TILE_JPEG_QUALITY", 80, minimum=1)
TILE_WORKERS = env_int("TILE_WORKERS", 8, minimum=1)
SLIDE_HANDLE_CACHE_SIZE = env_int("SLIDE_HANDLE_CACHE_SIZE", 32, minimum=1)
# How long the tile server remembers that a session/token may see a slide (seconds).
TILE_ACCESS_TTL = env_int("TILE_ACCESS_TTL", 5, minimum=0)

# Channel layer: Redis pub/sub by default. Every websocket message here is also kept elsewhere (the
# analysis replay log, the database for annotations and the worklist), so the core layer's per-channel
# queues and capacity buy nothing, while its group_send (a Lua script over every member's queue) caps a
# process near 1k messages/s. CHANNEL_LAYER=core switches back (bench/stream.py measures both).
CHANNEL_LAYER = env_str("CHANNEL_LAYER", "pubsub")
if CHANNEL_LAYER not in ("pubsub", "core"):
    raise ImproperlyConfigured("CHANNEL_LAYER must be 'pubsub' or 'core'")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": {"pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
                    "core": "channels_redis.core.RedisChannelLayer"}[CHANNEL_LAYER],
        # redis-py 8 times out socket reads after 5 s by default, which closes idle websockets (1011).
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": None}]},
    }
}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ROUTES = {"webapp.wsi.tasks.*": {"queue": "ingest"}, "webapp.analysis.tasks.*": {"queue": "gpu"}}
# Redis broker: an unacknowledged message (acks_late GPU jobs) whose worker died is delivered again after
# BROKER_VISIBILITY_TIMEOUT s, swept every BROKER_RESTORE_INTERVAL s. Message priorities 0 (first) … 9.
BROKER_VISIBILITY_TIMEOUT = env_int("BROKER_VISIBILITY_TIMEOUT", 3600, minimum=1)
BROKER_RESTORE_INTERVAL = env_int("BROKER_RESTORE_INTERVAL", 10, minimum=1)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": BROKER_RESTORE_INTERVAL,
    "unacked_restore_throttle": 1,
}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# Ask OmniPath (webapp/analysis; README "Ask OmniPath"). OMNIPATH_MODEL: a local checkpoint directory, read
# by the web process (tasks, demo flag) and loaded once by each GPU worker; `make demo` makes a tiny one.
OMNIPATH_MODEL = Path(env_str("OMNIPATH_MODEL", str(VAR_DIR / "models" / "omnipath-tiny")))
OMNIPATH_BACKEND = env_str("OMNIPATH_BACKEND", "omnipath")
if OMNIPATH_BACKEND not in ("omnipath", "hf-vlm"):
    raise ImproperlyConfigured(f"OMNIPATH_BACKEND={OMNIPATH_BACKEND!r}: use omnipath or hf-vlm")
OMNIPATH_DEVICE = env_str("OMNIPATH_DEVICE", "")  # "" = cuda when present, else cpu
ANALYSIS_PROMPT_MAX_CHARS = env_int("ANALYSIS_PROMPT_MAX_CHARS", 2000, minimum=1)
ANALYSIS_MAX_NEW_TOKENS = env_int("ANALYSIS_MAX_NEW_TOKENS", 1024, minimum=1)  # the most a request may ask for
ANALYSIS_SOFT_TIME_LIMIT = env_int("ANALYSIS_SOFT_TIME_LIMIT", 15 * 60, minimum=1)
ANALYSIS_TIME_LIMIT = env_int("ANALYSIS_TIME_LIMIT", 20 * 60, minimum=2)
if ANALYSIS_TIME_LIMIT <= ANALYSIS_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured("ANALYSIS_TIME_LIMIT must be longer than ANALYSIS_SOFT_TIME_LIMIT")
# A running job's lease: a worker that stops renewing it for this long is presumed dead (seconds).
ANALYSIS_LEASE_SECONDS = env_int("ANALYSIS_LEASE_SECONDS", 10, minimum=1)
ANALYSIS_LOG_TTL = env_int("ANALYSIS_LOG_TTL", 7 * 24 * 3600, minimum=60)  # replay log kept (seconds)
ANALYSIS_STREAM_BATCH = env_int("ANALYSIS_STREAM_BATCH", 64, minimum=1)  # messages per send at most
ANALYSIS_STREAM_FLUSH_MS = env_int("ANALYSIS_STREAM_FLUSH_MS", 15, minimum=0)  # least time between sends
ANALYSIS_MAX_MASK_POLYGONS = env_int("ANALYSIS_MAX_MASK_POLYGONS", 200, minimum=0)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated API call then gets 401 with `WWW-Authenticate: Token`.
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "webapp.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "login": env_str("LOGIN_THROTTLE_RATE", "20/min"),
        "uploads": env_str("UPLOAD_THROTTLE_RATE", "300/hour"),
        "analyses": env_str("ANALYSIS_THROTTLE_RATE", "30/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "PathDesk API",
    "DESCRIPTION": "Cases, slides and DeepZoom tiles of the PathDesk pathology reading desk.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from the sidecar package: no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webapp.wsi.schema.add_tile_paths",
    ],
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Production sits behind a TLS proxy and sets SECURE_COOKIES=1 (docker-compose.yml).
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.request": {"level": "ERROR"}},
}

# Any other request body (JSON, forms) larger than this is refused with 413 before it is read.
REQUEST_BODY_MAX_BYTES = env_int("REQUEST_BODY_MAX_BYTES", 10 * 1024 * 1024, minimum=1024)
# A QuPath GeoJSON export of 100,000 polygons is about 40 MiB.
ANNOTATION_IMPORT_MAX_BYTES = env_int("ANNOTATION_IMPORT_MAX_BYTES", 256 * 1024 * 1024, minimum=1024)
