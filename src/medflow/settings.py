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
        if env_bool("MEDFLOW_DB_POOL", True):
            options["pool"] = {
                "min_size": int(os.environ.get("MEDFLOW_DB_POOL_MIN", "1")),
                "max_size": int(os.environ.get("MEDFLOW_DB_POOL_MAX", "10")),
                "timeout": float(os.environ.get("MEDFLOW_DB_POOL_TIMEOUT", "10")),
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
    "Diagnosis": 10,
    **{
        name.strip(): int(years)
        for name, _, years in (
            item.partition("=") for item in env_list("MEDFLOW_RETENTION_YEARS", "")
        )
    },
}

# API tokens expire after this many days unless a shorter life is asked for.
MEDFLOW_TOKEN_DAYS = int(os.environ.get("MEDFLOW_TOKEN_DAYS", "30"))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# Take a snapshot of an aggregate every N events (0 turns snapshots off).
MEDFLOW_SNAPSHOT_EVERY = int(os.environ.get("MEDFLOW_SNAPSHOT_EVERY", "100"))

# Snapshot interval per aggregate type, overriding MEDFLOW_SNAPSHOT_EVERY: "Patient=50,Chart=20".
MEDFLOW_SNAPSHOT_EVERY_BY_TYPE = {
    name.strip(): int(every)
    for name, _, every in (
        item.partition("=") for item in env_list("MEDFLOW_SNAPSHOT_EVERY_BY_TYPE", "")
    )
}
