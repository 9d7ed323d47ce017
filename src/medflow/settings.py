"""Django settings, all taken from the environment (12-factor) with safe embedded defaults."""

import base64
import hashlib
import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent
VAR_DIR = Path(os.environ.get("MEDFLOW_VAR_DIR", Path.cwd() / "var"))


def env_bool(name: str, default: bool) -> bool:
    """Read a boolean from the environment ("1", "true", "on", "yes" are true)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "on", "yes"}


def env_number(name: str, default: str, kind: type = int) -> int | float:
    """Read an integer (or, with kind=float, a number) from the environment; a value that is
    not one stops the start with a message naming the variable."""
    value = os.environ.get(name) or default
    try:
        return kind(value)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {noun}, not {value!r}.") from None


def env_list(name: str, default: str) -> list[str]:
    """Read a comma-separated list from the environment."""
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def local_secret(filename: str) -> str:
    """Return a development secret kept in var/, creating it on first use."""
    path = VAR_DIR / filename
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", True)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = local_secret("secret_key")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver" if DEBUG else "")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "medflow.eventstore",
    "medflow.projections",
    "medflow.access",
    "medflow.patients",
    "medflow.clinical",
    "medflow.labs",
    "medflow.scheduling",
    "medflow.work",
    "medflow.timeline",
    "medflow.audit",
    "medflow.legacy",
    "medflow.ops",
    "medflow.web",
    "medflow.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "medflow.web.middleware.ActiveClinicMiddleware",
    "medflow.audit.middleware.AccessLogMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "medflow.urls"
WSGI_APPLICATION = "medflow.wsgi.application"
ASGI_APPLICATION = "medflow.asgi.application"

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


def database_config(url: str) -> dict:
    """Build Django's database settings from a URL, with MedFlow's per-backend options."""
    config = dj_database_url.parse(url, conn_max_age=0)
    engine = config["ENGINE"]
    if engine.endswith("sqlite3"):
        # WAL lets readers run beside the single writer; FULL makes a commit durable on power
        # loss; IMMEDIATE takes the write lock at BEGIN so two writers never deadlock on upgrade.
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
            ),
        }
        config["TEST"] = {"NAME": str(VAR_DIR / "test-medflow.sqlite3")}
    elif engine.endswith("postgresql"):
        options = config.setdefault("OPTIONS", {})
        # No JIT: it compiles a statement whose estimated cost is high, and MedFlow's statements
        # are short. A misestimated one (the events of 500 streams, one index lookup each) spent
        # 55-180 ms compiling (EXPLAIN ANALYZE, five runs) to run in 8 ms.
        options["options"] = f"-c jit=off {options.get('options', '')}".strip()
        # Django turns server-side prepared statements off for the sake of external poolers;
        # MedFlow's own pool keeps them, and a prepared hot statement skips parsing and planning
        # (update_patient p50 2.4 -> 2.0 ms). `off` for PgBouncer in transaction mode.
        prepare = os.environ.get("MEDFLOW_DB_PREPARE", "5")
        options.setdefault("prepare_threshold",
                           None if prepare == "off" else env_number("MEDFLOW_DB_PREPARE", "5"))
        if env_bool("MEDFLOW_DB_POOL", True):
            options["pool"] = {
                "min_size": env_number("MEDFLOW_DB_POOL_MIN", "1"),
                "max_size": env_number("MEDFLOW_DB_POOL_MAX", "10"),
                "timeout": env_number("MEDFLOW_DB_POOL_TIMEOUT", "10", float),
            }
    return config


DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'medflow.sqlite3'}"
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {"default": database_config(DATABASE_URL)}

REDIS_URL = os.environ.get("REDIS_URL", "")
# Keys carry the database's name, so that two databases sharing one Redis never mix their entries.
CACHE_PREFIX = os.environ.get("MEDFLOW_CACHE_PREFIX") or "medflow:" + hashlib.sha1(
    str(DATABASES["default"]["NAME"]).encode()).hexdigest()[:8]
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_PREFIX,
            # Fail fast when Redis is away: the cache is an accelerator, never a dependency.
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

# Master key wrapping the per-patient data keys (32 bytes, URL-safe base64). Production refuses to
# start without one; development generates one into var/ and keeps it.
MEDFLOW_MASTER_KEY = os.environ.get("MEDFLOW_MASTER_KEY", "")
if not MEDFLOW_MASTER_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("MEDFLOW_MASTER_KEY must be set when DEBUG is off.")
    _key_file = VAR_DIR / "master_key"
    if not _key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(base64.urlsafe_b64encode(secrets.token_bytes(32)).decode())
        _key_file.chmod(0o600)
    MEDFLOW_MASTER_KEY = _key_file.read_text().strip()
# Earlier master keys, still able to unwrap data keys until `medflow keys rotate` re-wraps them.
MEDFLOW_PREVIOUS_MASTER_KEYS = env_list("MEDFLOW_PREVIOUS_MASTER_KEYS", "")

# Years each record type must be kept after its last change before a patient may be forgotten
# (clinical records are commonly kept 10 years). Override: "Encounter=10,LabOrder=7".
MEDFLOW_RETENTION_YEARS = {
    "Encounter": 10, "ClinicalNote": 10, "Prescription": 10, "LabOrder": 10, "Chart": 10,
    "Diagnosis": 10, "Allergy": 10,
    **{
        name.strip(): int(years)
        for name, _, years in (
            item.partition("=") for item in env_list("MEDFLOW_RETENTION_YEARS", "")
        )
    },
}

# API tokens expire after this many days unless a shorter life is asked for.
MEDFLOW_TOKEN_DAYS = env_number("MEDFLOW_TOKEN_DAYS", "30")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Take a snapshot of an aggregate every N events (0 turns snapshots off).
MEDFLOW_SNAPSHOT_EVERY = env_number("MEDFLOW_SNAPSHOT_EVERY", "100")

# Snapshot interval per aggregate type, overriding MEDFLOW_SNAPSHOT_EVERY: "Patient=50,Chart=20".
MEDFLOW_SNAPSHOT_EVERY_BY_TYPE = {
    name.strip(): int(every)
    for name, _, every in (
        item.partition("=") for item in env_list("MEDFLOW_SNAPSHOT_EVERY_BY_TYPE", "")
    )
}

# Web UI (medflow.web): session login, and sessions that end after this many idle minutes
# (every request pushes the expiry back).
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
MEDFLOW_SESSION_IDLE_MINUTES = env_number("MEDFLOW_SESSION_IDLE_MINUTES", "15")
SESSION_COOKIE_AGE = MEDFLOW_SESSION_IDLE_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = True

# --- Operations (medflow.ops): health, metrics, slow-query log, JSON logs ---
# Request id / user id on log records, one log line per request, 503 when the DB pool is exhausted.
MIDDLEWARE.append("medflow.ops.middleware.OpsMiddleware")
# Queries slower than this many milliseconds are logged (SQL text only, never parameters); -1: off.
MEDFLOW_SLOW_QUERY_MS = env_number("MEDFLOW_SLOW_QUERY_MS", "1000", float)
# /health answers 503 when a catch-up projection lags more than this many seconds (unset: never).
MEDFLOW_HEALTH_MAX_LAG_SECONDS = (
    env_number("MEDFLOW_HEALTH_MAX_LAG_SECONDS", "", float)
    if os.environ.get("MEDFLOW_HEALTH_MAX_LAG_SECONDS") else None
)
# /metrics: with a token, only `Authorization: Bearer <token>` may read it; without one, loopback only.
MEDFLOW_METRICS_TOKEN = os.environ.get("MEDFLOW_METRICS_TOKEN", "")
BROKER_URL = os.environ.get("BROKER_URL", "")
# Monthly partitions of event_store kept ahead of time by `medflow migrate` and
# `medflow partitions ensure` (PostgreSQL; MEDFLOW_EVENT_STORE_PARTITIONING=0 at the first
# migrate keeps a plain table).
MEDFLOW_PARTITIONS_AHEAD = env_number("MEDFLOW_PARTITIONS_AHEAD", "3")
# MEDFLOW_LOG_FORMAT=json: one JSON object a line, with request id and user id (no PHI).
LOGGING.setdefault("filters", {})["request_context"] = {
    "()": "medflow.ops.jsonlog.RequestContextFilter"}
LOGGING["handlers"]["console"]["filters"] = ["request_context"]
LOGGING.setdefault("loggers", {})["medflow.requests"] = {
    "level": os.environ.get("MEDFLOW_REQUEST_LOG_LEVEL", "INFO")}
if os.environ.get("MEDFLOW_LOG_FORMAT", "").lower() == "json":
    LOGGING.setdefault("formatters", {})["json"] = {"()": "medflow.ops.jsonlog.JsonFormatter"}
    LOGGING["handlers"]["console"]["formatter"] = "json"

# --- Access control and authentication hardening (medflow.access; see README "Security") -------
# Break-glass: how long a clinician may read a patient of another clinic after giving a reason.
MEDFLOW_BREAK_GLASS_MINUTES = env_number("MEDFLOW_BREAK_GLASS_MINUTES", "60")

from datetime import timedelta as _timedelta  # noqa: E402

# Login throttling (django-axes): after MEDFLOW_LOGIN_FAILURE_LIMIT failed logins of one username
# from one address, that pair is locked out for MEDFLOW_LOGIN_LOCKOUT_MINUTES. It covers the JSON
# login (/api/auth/login) and Django's login view. The backend goes first so that it refuses
# locked-out pairs before any password is checked; the middleware goes last (axes' docs).
# TOTP second factor (django-otp): users with a confirmed device (`medflow staff totp`) must give
# a one-time code; OTPMiddleware adds request.user.is_verified().
INSTALLED_APPS += ["axes", "django_otp", "django_otp.plugins.otp_totp"]
MIDDLEWARE.insert(MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1,
                  "django_otp.middleware.OTPMiddleware")
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
AUTHENTICATION_BACKENDS = [
    "medflow.access.auth.ThrottledBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_number("MEDFLOW_LOGIN_FAILURE_LIMIT", "5")
AXES_COOLOFF_TIME = _timedelta(
    minutes=env_number("MEDFLOW_LOGIN_LOCKOUT_MINUTES", "15"))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "medflow.access.auth.lockout_response"
AXES_VERBOSE = env_bool("MEDFLOW_AXES_VERBOSE", False)
OTP_TOTP_ISSUER = os.environ.get("MEDFLOW_OTP_ISSUER", "MedFlow")

# Production transport security: on whenever DEBUG is off, each overridable from the
# environment (`medflow check --deploy` passes with DEBUG=false, SECRET_KEY, ALLOWED_HOSTS,
# MEDFLOW_MASTER_KEY set). Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER=
# "HTTP_X_FORWARDED_PROTO,https" (only when the proxy overwrites that header).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_number("SECURE_HSTS_SECONDS", "0" if DEBUG else "31536000")
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
# The preload flag only allows submitting the site to browsers' preload list (by hand, at hstspreload.org).
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
X_FRAME_OPTIONS = "DENY"
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")
if os.environ.get("SECURE_PROXY_SSL_HEADER"):
    SECURE_PROXY_SSL_HEADER = tuple(env_list("SECURE_PROXY_SSL_HEADER", ""))[:2]
# The health and metrics endpoints answer probes over plain HTTP inside the cluster.
SECURE_REDIRECT_EXEMPT = env_list("SECURE_REDIRECT_EXEMPT", r"^health$,^metrics$")

# Legacy migration (issue 6): MEDFLOW_DUAL_WRITE=on mirrors every write made through the services
# into the old system's legacy_* tables (until `medflow legacy cutover`), so it stays a fallback.
MEDFLOW_DUAL_WRITE = os.environ.get("MEDFLOW_DUAL_WRITE", "off").strip().lower() in (
    "on", "1", "true", "yes")
