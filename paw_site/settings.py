"""PAW Hub settings: one module, read through one environ.Env.

With nothing set it runs the embedded default (SQLite, Celery over kombu's
filesystem transport, local-memory cache). Environment variables switch to the
production parts; the README's configuration table lists every one.
"""

import os
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from paw_site.names import RESERVED_NAMES

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; a missing file is fine

# Where the embedded default keeps its state (database, broker folders, media).
VAR_DIR = Path(env("PAW_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)
# The public development key is only ever used with DEBUG on. With DEBUG off and
# no SECRET_KEY set (`make run` on a fresh machine), the site makes a random key
# once and keeps it in VAR_DIR/secret_key; the development key itself is refused.
_DEV_SECRET_KEY = "django-insecure-paw-hub-local-development-key-not-for-production-use"


def _installation_key(path):
    import secrets

    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


SECRET_KEY = env("SECRET_KEY", default=None)
if SECRET_KEY is None:
    SECRET_KEY = _DEV_SECRET_KEY if DEBUG else _installation_key(VAR_DIR / "secret_key")
if SECRET_KEY == _DEV_SECRET_KEY and not DEBUG:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "SECRET_KEY is the public development key while DEBUG is off: set a secret SECRET_KEY."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    # Only for its templates and static files: the API docs page with Swagger UI
    # served from here, not from a CDN.
    "ninja",
    "accounts",
    "programs",
    "compiler",
    "runtime",
    "api",
]

MIDDLEWARE = [
    "paw_site.middleware.request_id",
    "api.middleware.api_errors",
    "django.middleware.security.SecurityMiddleware",
    "paw_site.middleware.content_security_policy",
    "paw_site.middleware.StaticFiles",  # WhiteNoise, async-capable
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "paw_site.urls"
WSGI_APPLICATION = "paw_site.wsgi.application"
ASGI_APPLICATION = "paw_site.asgi.application"  # what the Procfile serves

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.sign_in_options",
            ],
        },
    }
]

# --- database -----------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'paw.sqlite3'}"),
}
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=0))
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Tests that run a real worker process need a test database both processes
    # can open, so never the in-memory one pytest-django would pick for SQLite.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_paw.sqlite3")}
    # WAL lets the web process read while a worker writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache --------------------------------------------------------------------
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://paw-hub")}

# --- auth ---------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"

ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_ALLOW_SIGNUP = env.bool("ACCOUNT_ALLOW_SIGNUP", default=True)
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
ACCOUNT_LOGIN_METHODS = {"username"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
# An address is changed on allauth's email page only: after a password prompt,
# and the new address replaces the old one once its owner confirms it by mail.
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_REAUTHENTICATION_REQUIRED = True
ACCOUNT_SESSION_REMEMBER = True
ACCOUNT_USERNAME_MIN_LENGTH = 2
ACCOUNT_USERNAME_BLACKLIST = sorted(RESERVED_NAMES)
# A GitHub account never takes over a local account through a matching email:
# no email-based auto-connect, and social sign-up skips the extra form.
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
# An address is changed on allauth's email page only: after a password prompt,
# and the new address replaces the old one once its owner confirms it by mail.
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_REAUTHENTICATION_REQUIRED = True
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_STORE_TOKENS = False

GITHUB_CLIENT_ID = env("GITHUB_CLIENT_ID", default="")
GITHUB_CLIENT_SECRET = env("GITHUB_CLIENT_SECRET", default="")
GITHUB_ENABLED = bool(GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET)
_github = {"SCOPE": ["read:user", "user:email"]}
if GITHUB_ENABLED:
    _github["APP"] = {"client_id": GITHUB_CLIENT_ID, "secret": GITHUB_CLIENT_SECRET}
# GitHub Enterprise-style base URL; tests point it at a local fake GitHub.
if env("GITHUB_URL", default=""):
    _github["GITHUB_URL"] = env("GITHUB_URL")
SOCIALACCOUNT_PROVIDERS = {"github": _github}

# --- i18n / static / media ------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # The hashed-name manifest needs `collectstatic` first, so production opts in.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env.bool("STATIC_MANIFEST", default=False)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
# Tests and `make run` serve static files straight from the finders.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)
WHITENOISE_AUTOREFRESH = DEBUG
MEDIA_ROOT = Path(env("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# When set (e.g. "/protected-media/"), downloads are handed to the front server
# with X-Accel-Redirect: <prefix><path under MEDIA_ROOT>; nginx then sends the
# file and answers Range itself from an `internal` location aliased to MEDIA_ROOT.
DOWNLOADS_X_ACCEL_REDIRECT_PREFIX = env("DOWNLOADS_X_ACCEL_REDIRECT_PREFIX", default="")
# Compiled adapters and bundles go through STORAGES["default"] (programs/artifacts.py):
# MEDIA_ROOT on this host's disk unless a bucket is named. With one, they live in an
# S3-compatible store (django-storages), which every host of the site reaches: the
# compile worker that made them uploads them, runtime workers cache a copy keyed by
# sha256 in ARTIFACT_CACHE_DIR, the site streams them (or redirects, below).
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            # None: boto3's own chain (its AWS_* variables, an instance role...).
            "endpoint_url": env("AWS_S3_ENDPOINT_URL", default=None),
            "access_key": env("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env("AWS_SECRET_ACCESS_KEY", default=None),
            "region_name": env("AWS_S3_REGION_NAME", default=None),
            "location": env("AWS_LOCATION", default=""),
            # Path-style works with every S3-compatible server (SeaweedFS, MinIO...).
            "addressing_style": env("AWS_S3_ADDRESSING_STYLE", default="path"),
            "signature_version": "s3v4",
            "default_acl": None,
            "querystring_expire": env.int("DOWNLOADS_SIGNED_URL_SECONDS", default=300),
        },
    }
ARTIFACT_CACHE_DIR = Path(env("ARTIFACT_CACHE_DIR", default=str(VAR_DIR / "artifact-cache")))
# Remote storage only: answer a download with a redirect to a signed URL of the
# store instead of streaming it through the site (see benchmarks/EXPERIMENTS.md).
DOWNLOADS_REDIRECT_TO_STORAGE = env.bool("DOWNLOADS_REDIRECT_TO_STORAGE", default=False)
# Seconds the gallery keeps a rendered page of results (shared by everyone);
# saving or moderating a program makes them stale at once. 0 turns it off.
HUB_CACHE_SECONDS = env.int("HUB_CACHE_SECONDS", default=30)

# --- security -------------------------------------------------------------------
# HTTPS-only settings follow SECURE_SSL_REDIRECT, which production turns on
# (off by default so `make run` serves plain http://127.0.0.1).
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_HTTPS_PROXY", default=False) else None
)
SESSION_COOKIE_SECURE = SECURE_SSL_REDIRECT
CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000 if SECURE_SSL_REDIRECT else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Number of proxies in front of the app whose X-Forwarded-For entries are
# trusted; anything further left in the header is client-controlled.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# allauth's own limits (failed logins, sign-ups) key on the same client address.
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT

# --- celery ---------------------------------------------------------------------
BROKER_DIR = VAR_DIR / "broker"
# (A hostname, which the folder transport ignores: without one kombu warns in every process.)
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="filesystem://localhost//")
_broker_is_redis = CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
CELERY_RESULT_BACKEND = env(
    "CELERY_RESULT_BACKEND",
    default=CELERY_BROKER_URL if _broker_is_redis else f"file://{VAR_DIR / 'celery-results'}",
)
# The longest job is a compile; its hard limit bounds how long a task may run.
COMPILE_SOFT_TIME_LIMIT = env.int("COMPILE_SOFT_TIME_LIMIT", default=900)
COMPILE_HARD_TIME_LIMIT = env.int("COMPILE_HARD_TIME_LIMIT", default=1000)
# A compiling job whose worker has not reported for this long is presumed dead.
COMPILE_HEARTBEAT_STALE_SECONDS = env.int("COMPILE_HEARTBEAT_STALE_SECONDS", default=120)
# A queued job no worker has taken for this long is sent again (its message
# may be lost); keep it above how long a job waits behind others.
COMPILE_RESEND_QUEUED_SECONDS = env.int("COMPILE_RESEND_QUEUED_SECONDS", default=600)
# A job is tried at most this many times (worker crashes included), then failed.
COMPILE_MAX_ATTEMPTS = env.int("COMPILE_MAX_ATTEMPTS", default=3)
# The blocking POST /api/v1/compile answers after at most this long, with the job
# still running if it is (the PAW SDK reads for up to 2400 s).
COMPILE_WAIT_SECONDS = env.int("COMPILE_WAIT_SECONDS", default=1800)
# Models derived from the shipped base GGUF, each built once: the dequantized Hugging
# Face copy the trainer loads and the Q8_0 copy the runtime runs. The runtime reads the
# variable itself (it never imports Django), so every process of the site gets it.
MODEL_CACHE_DIR = Path(env("MODEL_CACHE_DIR", default=str(VAR_DIR / "models")))
os.environ.setdefault("MODEL_CACHE_DIR", str(MODEL_CACHE_DIR))
# Offer the vLLM compilers: their jobs go to the `compile_gpu` queue, which only
# workers on GPU hosts (with vLLM installed) consume.
PAW_ENABLE_VLLM = env.bool("PAW_ENABLE_VLLM", default=False)
# Running programs ("Try it", POST /infer, case checks) on the `runtime` queue:
# seconds one call may run in a worker before it is stopped, and seconds the
# site waits for an answer (a call still queued after that is dropped unrun).
RUNTIME_CALL_TIMEOUT_SECONDS = env.int("RUNTIME_CALL_TIMEOUT_SECONDS", default=20)
RUNTIME_WAIT_SECONDS = env.int("RUNTIME_WAIT_SECONDS", default=30)
# What a runtime worker runs programs with: "llama.cpp" (the default, any host) or
# "vllm" (GPU hosts: calls of different programs batched into one multi-LoRA generate;
# the worker runs a thread pool, see `make run-gpu`). Read by the runtime workers only.
PAW_RUNTIME_ENGINE = env("PAW_RUNTIME_ENGINE", default="llama.cpp")
if PAW_RUNTIME_ENGINE not in ("llama.cpp", "vllm"):
    raise ImproperlyConfigured("PAW_RUNTIME_ENGINE is llama.cpp or vllm")
# What embeds specs for search by meaning (programs/semantic.py): all-MiniLM-L6-v2 on
# "torch" (the default, CPU) or served by "vllm"'s pooling runner (GPU hosts): the
# same vectors either way.
PAW_EMBEDDING_ENGINE = env("PAW_EMBEDDING_ENGINE", default="torch")
if PAW_EMBEDDING_ENGINE not in ("torch", "vllm"):
    raise ImproperlyConfigured("PAW_EMBEDDING_ENGINE is torch or vllm")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    # An unacked message is redelivered only after this many seconds, so it must
    # exceed the longest hard time limit or a running job would be run twice.
    {"visibility_timeout": COMPILE_HARD_TIME_LIMIT * 2}
    if _broker_is_redis
    else {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # How often a worker looks for new messages in the folder (kombu's default
        # is 1 s, which a run waited for on top of its own time).
        "polling_interval": env.float("BROKER_POLLING_INTERVAL", default=0.01),
    }
)
# Kombu transport options as JSON, over the ones above: e.g. Redis's socket_timeout
# (a broker that can vanish without closing the connection), or a tiny
# visibility_timeout with unacked_restore_interval/throttle for a test.
CELERY_BROKER_TRANSPORT_OPTIONS |= env.json("BROKER_TRANSPORT_OPTIONS", default={})
if not _broker_is_redis:
    # The embedded default keeps broker and results in folders that must exist.
    for folder in ("queue", "processed", "control"):
        (BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
    (VAR_DIR / "celery-results").mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = (
    {"visibility_timeout": COMPILE_HARD_TIME_LIMIT * 2} if _broker_is_redis else {}
)
CELERY_TASK_ALWAYS_EAGER = False
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- logging ----------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
