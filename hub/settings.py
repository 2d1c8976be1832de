"""Wharf settings: every value comes from the environment, with safe defaults.

Every variable read here is listed in README.md ("Configuration"). Typed helpers fail
loudly on bad values and accept `<NAME>_FILE` for secrets.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envsecret(name: str, default: str = "") -> str:
    """A secret from NAME or from the file named by NAME_FILE."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        return Path(path).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected true or false")


def envint(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected an integer") from None


def envfloat(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a number") from None


def envlist(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# --- Data directory -------------------------------------------------------------------------
DATA_DIR = Path(env("HUB_DATA_DIR") or BASE_DIR / "data").resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)
UPLOAD_STAGING_DIR = DATA_DIR / "uploads"
KEYS_DIR = DATA_DIR / "keys"
for _folder in (UPLOAD_STAGING_DIR, KEYS_DIR):
    _folder.mkdir(parents=True, exist_ok=True)
try:
    KEYS_DIR.chmod(0o700)  # signing keys and the generated secret key
except OSError:  # owned by another user, or a read-only mount (a deployment's shared keys): leave it as it is
    pass


def _generated_secret_key() -> str:
    """A secret key created on first start and kept in the data dir (mode 0600)."""
    path = KEYS_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_urlsafe(50)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


SECRET_KEY = envsecret("SECRET_KEY") or _generated_secret_key()
# Keys of the secrets stored encrypted (lib/crypto.py), current first; unset: KEYS_DIR/encryption.key.
HUB_ENCRYPTION_KEY = envsecret("HUB_ENCRYPTION_KEY")
DEBUG = envbool("DEBUG", False)

# --- Public URL: hosts, CSRF origins and the registry token service derive from it ----------
PORT = envint("PORT", 8000)
HUB_BIND = env("HUB_BIND", "127.0.0.1")
HUB_PUBLIC_URL = env("HUB_PUBLIC_URL", f"http://127.0.0.1:{PORT}").rstrip("/")
_public = urlsplit(HUB_PUBLIC_URL)
if _public.scheme not in {"http", "https"} or not _public.hostname:
    raise ImproperlyConfigured(f"HUB_PUBLIC_URL={HUB_PUBLIC_URL!r}: expected http(s)://host[:port]")
HUB_PUBLIC_HOST = _public.netloc  # host:port as clients write it in image names
REGISTRY_SERVICE = HUB_PUBLIC_HOST
ALLOWED_HOSTS = [_public.hostname, *envlist("HUB_EXTRA_HOSTS")]
if DEBUG or _public.hostname in {"127.0.0.1", "localhost"}:
    ALLOWED_HOSTS += ["127.0.0.1", "localhost", "[::1]", "testserver"]
CSRF_TRUSTED_ORIGINS = [f"{_public.scheme}://{_public.netloc}"]
# Forwarded headers (X-Forwarded-Proto, X-Forwarded-For) are believed only behind a proxy, whoever the
# peer is: accounts.throttles.client_address is the one reader of the client address.
HUB_BEHIND_PROXY = envbool("HUB_BEHIND_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HUB_BEHIND_PROXY else None
USE_X_FORWARDED_HOST = False
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _public.scheme == "https"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SECURE_HSTS_SECONDS = envint("HUB_HSTS_SECONDS", 0)

# --- Applications ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",  # single sign-on (OpenID Connect): installed always, so the schema never depends on it
    "allauth.socialaccount.providers.openid_connect",
    "hub",
    "accounts",
    "repositories",
    "registry",
    "webhooks",
    "builds",
]

MIDDLEWARE = [
    "hub.middleware.MetricsMiddleware",  # first: it sees every request, the registry's fast path too
    "hub.middleware.OperationsPathsMiddleware",  # probes and scrapes, whatever their Host header
    "registry.mirror.hostmode.MirrorHostMiddleware",  # HUB_MIRROR_HOSTS: /v2/ under the upstream's names
    "hub.middleware.AuditContextMiddleware",  # who acts, from where: for the audit log's events
    "hub.middleware.RegistryFastPathMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "hub.urls"
WSGI_APPLICATION = "hub.wsgi.application"
APPEND_SLASH = False

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
                "hub.context_processors.site",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_URL = env("DATABASE_URL")
# PostgreSQL: a connection pool per process (psycopg_pool), shared by all its greenlets and threads.
# Django's connections are per thread, and under gunicorn's gevent workers every client connection
# is a greenlet of its own: without the pool, each one opened (and later dropped) a connection of its
# own, a connect of a few milliseconds. A request takes one from the pool at its first query and gives
# it back when it ends (CONN_MAX_AGE 0, which the pool requires). Django makes the pool at a process's
# first query: in a gunicorn worker that is after the fork and gevent's monkey-patching (no
# preload_app), so the pool's threads are greenlets. Celery's Django fixup closes a prefork pool
# process's pool after each task. HUB_DB_POOL=false: the former persistent connections, one per thread
# (or greenlet), kept HUB_DB_CONN_MAX_AGE seconds. On by default in the web workers only (gunicorn.conf.py
# sets it): a manage.py command or a Celery process gains nothing from it, and with an unreachable
# database the pool retries for HUB_DB_POOL_TIMEOUT seconds where a plain connect says why at once.
# SQLite (the embedded default) gets a pool of its own with the same setting (lib/sqlite_pool).
HUB_DB_POOL = envbool("HUB_DB_POOL", False)
HUB_DB_POOL_MIN_SIZE = envint("HUB_DB_POOL_MIN_SIZE", 1)
HUB_DB_POOL_MAX_SIZE = envint("HUB_DB_POOL_MAX_SIZE", 10)
HUB_DB_POOL_TIMEOUT = envfloat("HUB_DB_POOL_TIMEOUT", 30.0)
if DATABASE_URL and not DATABASE_URL.startswith("sqlite:"):
    _pooled = HUB_DB_POOL and DATABASE_URL.split(":", 1)[0] in {"postgres", "postgresql", "pgsql"}
    DATABASES = {"default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=0 if _pooled else envint("HUB_DB_CONN_MAX_AGE", 60))}
    # Without the pool: Django's SELECT 1 when a request reuses a connection. With it: the pool's own
    # check (an empty query, one round trip, no connect) on each connection it hands out, so a
    # connection the server or the network dropped meanwhile (a restart, a failover, an idle timeout)
    # is replaced instead of failing a request; Django's check is then skipped.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if _pooled:
        if not 0 <= HUB_DB_POOL_MIN_SIZE <= HUB_DB_POOL_MAX_SIZE or HUB_DB_POOL_MAX_SIZE < 1:
            raise ImproperlyConfigured(
                f"HUB_DB_POOL_MIN_SIZE={HUB_DB_POOL_MIN_SIZE}, HUB_DB_POOL_MAX_SIZE={HUB_DB_POOL_MAX_SIZE}: "
                "expected 0 <= min <= max and max >= 1")
        if HUB_DB_POOL_TIMEOUT <= 0:
            raise ImproperlyConfigured(f"HUB_DB_POOL_TIMEOUT={HUB_DB_POOL_TIMEOUT}: expected a positive number")
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": HUB_DB_POOL_MIN_SIZE,  # kept open while idle (each process: web worker, Celery child)
            "max_size": HUB_DB_POOL_MAX_SIZE,  # per process: PostgreSQL's max_connections must cover them all
            "timeout": HUB_DB_POOL_TIMEOUT,  # a request waits this long for a free one, then fails
        }
else:
    # Embedded default: SQLite tuned for several processes writing at once.
    SQLITE_PATH = dj_database_url.parse(DATABASE_URL)["NAME"] if DATABASE_URL else str(DATA_DIR / "hub.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            # Keep each thread's connection: opening one runs the PRAGMAs below every time.
            "CONN_MAX_AGE": envint("HUB_DB_CONN_MAX_AGE", 600),
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": (
                    "PRAGMA journal_mode=WAL;"
                    "PRAGMA synchronous=NORMAL;"
                    "PRAGMA busy_timeout=30000;"
                    "PRAGMA foreign_keys=ON;"
                ),
            },
        }
    }
    if HUB_DB_POOL:
        # The web workers (gunicorn.conf.py): a client connection's greenlet keeps its SQLite connection for
        # all its requests, as before, and leaves it open on its process's pool when the client goes, for
        # the next client instead of each new greenlet opening one of its own (lib/sqlite_pool).
        DATABASES["default"]["ENGINE"] = "lib.sqlite_pool"
        DATABASES["default"]["OPTIONS"]["pool"] = {"max_idle": HUB_DB_POOL_MAX_SIZE}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: Redis when configured, else the database cache (shared between processes) -------
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Atomic incr (lib/cache.py). Culling starts past MAX_ENTRIES, expired rows first, then by key order:
    # Django's 300 would let a burst of failures from many addresses cull an account's failure counter.
    CACHES = {"default": {"BACKEND": "lib.cache.DatabaseCache", "LOCATION": "hub_cache",
                          "OPTIONS": {"MAX_ENTRIES": 100_000}}}

# --- Storage: bytes only through aliases ----------------------------------------------------
HUB_S3_BUCKET = env("HUB_S3_BUCKET")
HUB_S3_ENDPOINT_URL = env("HUB_S3_ENDPOINT_URL") or None
HUB_S3_REGION = env("HUB_S3_REGION") or None
USE_S3 = bool(HUB_S3_BUCKET)


def _byte_storage(folder: str) -> dict:
    if USE_S3:
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": HUB_S3_BUCKET,
                "endpoint_url": HUB_S3_ENDPOINT_URL,
                "region_name": HUB_S3_REGION,
                "signature_version": "s3v4",  # presigned URLs: AWS refuses SigV2 in newer regions
                "location": folder,
                "file_overwrite": True,
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 600,
            },
        }
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / folder), "file_permissions_mode": 0o640},
    }


STORAGES = {
    "default": _byte_storage("media"),
    "blobs": _byte_storage("blobs"),
    "build-logs": _byte_storage("build-logs"),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Celery ---------------------------------------------------------------------------------
CELERY_QUEUES_DIR = DATA_DIR / "celery"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict = {"visibility_timeout": 3600}
else:
    for _folder in ("queue", "processing", "malformed", "processed", "control"):
        (CELERY_QUEUES_DIR / _folder).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport with atomic writes and claims, malformed messages set aside (lib/fsbroker.py).
    CELERY_BROKER_URL = "wharf-fs://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUES_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUES_DIR / "queue"),
        "processing_folder": str(CELERY_QUEUES_DIR / "processing"),  # same filesystem as queue/: renames
        "malformed_folder": str(CELERY_QUEUES_DIR / "malformed"),
        "processed_folder": str(CELERY_QUEUES_DIR / "processed"),
        # The default (1 s) adds up to a second to every webhook and build. A worker whose processes are
        # all busy also waits one interval before it takes the next message; 20 ms costs ~1% of a core idle.
        "polling_interval": 0.02,
        "control_folder": str(CELERY_QUEUES_DIR / "control"),  # else kombu writes ./control in the cwd
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = envbool("HUB_CELERY_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "celery"
# Builds run on the `builds` queue in the build worker (builds/worker.py); every other task here.
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# On stop, running tasks get this long before a cold shutdown cancels them (messages not started yet are requeued).
CELERY_WORKER_SOFT_SHUTDOWN_TIMEOUT = envfloat("HUB_WORKER_SOFT_SHUTDOWN_SECONDS", 3.0)
CELERY_BEAT_SCHEDULE_FILENAME = str(CELERY_QUEUES_DIR / "beat-schedule")
# Any number of beats may run: only the one holding the lease sends (hub/beat.py); a dead one is
# replaced within HUB_BEAT_LEASE_SECONDS.
CELERY_BEAT_SCHEDULER = "hub.beat:ClusterScheduler"
HUB_BEAT_LEASE_SECONDS = envfloat("HUB_BEAT_LEASE_SECONDS", 30.0)
PULL_COUNTER_FLUSH_SECONDS = envfloat("HUB_PULL_FLUSH_SECONDS", 30.0)

# --- Accounts and authentication ------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "accounts.hashers.Argon2idHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 9}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_USER_MODEL_USERNAME_FIELD = "username"
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env("HUB_EMAIL_VERIFICATION", "optional")  # mandatory | optional | none
if ACCOUNT_EMAIL_VERIFICATION not in {"mandatory", "optional", "none"}:
    raise ImproperlyConfigured("HUB_EMAIL_VERIFICATION must be mandatory, optional or none")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USERNAME_MIN_LENGTH = 4
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}  # the username rules shown up front
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
HUB_SITE_NAME = env("HUB_SITE_NAME", "Wharf")  # pages, emails (greeting, subject), authenticator apps
ACCOUNT_EMAIL_SUBJECT_PREFIX = f"[{HUB_SITE_NAME}] "
# Failed password logins are counted by accounts.throttles for every door (the adapter replaces
# allauth's login_failed limit): 10 per account per 5 minutes, 50 per address.
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "signup": "20/m/ip",
    "reset_password": "20/m/ip,5/m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = HUB_SITE_NAME


# --- Single sign-on with OpenID Connect (accounts/sso.py; README, "Single sign-on") -------------
def _oidc_providers(raw: str) -> list[dict]:
    """HUB_OIDC_PROVIDERS: a JSON list of {"name", "issuer", "client_id", "secret" (or "secret_file"),
    "domains", optional "id" and "signup"}; checked here so a mistake stops Wharf at start-up."""
    import json
    import re

    if not raw.strip():
        return []
    try:
        items = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"HUB_OIDC_PROVIDERS: not valid JSON ({exc})") from None
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ImproperlyConfigured("HUB_OIDC_PROVIDERS: expected a JSON list of providers")
    providers, seen = [], set()
    for number, item in enumerate(items, 1):
        where = f"HUB_OIDC_PROVIDERS, provider {number}"
        if not isinstance(item, dict):
            raise ImproperlyConfigured(f"{where}: expected an object")
        unknown = set(item) - {"id", "name", "issuer", "client_id", "secret", "secret_file", "domains", "signup"}
        if unknown:
            raise ImproperlyConfigured(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        name = str(item.get("name") or "").strip()
        if not name:
            raise ImproperlyConfigured(f"{where}: needs a name (shown on the button)")
        ident = str(item.get("id") or re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"))
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,29}", ident) or ident in seen:
            raise ImproperlyConfigured(f"{where}: id {ident!r} must be unique, 1-30 of a-z, 0-9 and -")
        seen.add(ident)
        issuer = str(item.get("issuer") or "").strip().rstrip("/")
        parts = urlsplit(issuer)
        loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
        if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
            raise ImproperlyConfigured(f"{where}: issuer {issuer!r} must be an https:// URL (http:// on loopback only)")
        secret = str(item.get("secret") or "")
        if item.get("secret_file"):
            secret = Path(str(item["secret_file"])).read_text().strip()
        if not item.get("client_id") or not secret:
            raise ImproperlyConfigured(f"{where}: needs client_id and secret (or secret_file)")
        domains = item.get("domains") or []
        if isinstance(domains, str):
            domains = domains.split(",")
        domains = [str(domain).strip().lower().lstrip("@") for domain in domains if str(domain).strip()]
        if not domains or not all(re.fullmatch(r"[a-z0-9.-]+\.[a-z0-9-]+", domain) for domain in domains):
            raise ImproperlyConfigured(f"{where}: domains must list the email domains it may vouch for")
        signup = item.get("signup")
        if signup is not None and not isinstance(signup, bool):
            raise ImproperlyConfigured(f"{where}: signup must be true or false")
        providers.append({"id": ident, "name": name, "issuer": issuer, "client_id": str(item["client_id"]),
                          "secret": secret, "domains": domains, "signup": signup})
    return providers


HUB_OIDC_PROVIDERS = _oidc_providers(envsecret("HUB_OIDC_PROVIDERS"))
SOCIALACCOUNT_ADAPTER = "accounts.sso.SocialAccountAdapter"
SOCIALACCOUNT_PROVIDERS = {
    "openid_connect": {
        "OAUTH_PKCE_ENABLED": True,
        "APPS": [
            {"provider_id": provider["id"], "name": provider["name"], "client_id": provider["client_id"],
             "secret": provider["secret"],
             "settings": {"server_url": provider["issuer"], "email_domains": provider["domains"],
                          "signup": provider["signup"]}}
            for provider in HUB_OIDC_PROVIDERS
        ],
    },
}
SOCIALACCOUNT_AUTO_SIGNUP = False  # a new account always picks its namespace name first
SOCIALACCOUNT_EMAIL_REQUIRED = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True  # linking by email: accounts.sso decides when it may
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True
SOCIALACCOUNT_LOGIN_ON_GET = False  # the buttons POST (CSRF), a GET asks first
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_REQUESTS_TIMEOUT = 10
SOCIALACCOUNT_FORMS = {"signup": "accounts.forms.SSOSignupForm"}

# --- Email ----------------------------------------------------------------------------------
EMAIL_URL = env("EMAIL_URL")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", f"Wharf <noreply@{_public.hostname}>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if EMAIL_URL:
    _mail = urlsplit(EMAIL_URL)
    if _mail.scheme not in {"smtp", "smtps", "smtp+tls"}:
        raise ImproperlyConfigured("EMAIL_URL must be smtp://, smtp+tls:// or smtps://user:pass@host:port")
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = _mail.hostname or "localhost"
    EMAIL_PORT = _mail.port or (465 if _mail.scheme == "smtps" else 587 if _mail.scheme == "smtp+tls" else 25)
    EMAIL_HOST_USER = unquote(_mail.username or "")
    EMAIL_HOST_PASSWORD = unquote(_mail.password or "")
    EMAIL_USE_SSL = _mail.scheme == "smtps"
    EMAIL_USE_TLS = _mail.scheme == "smtp+tls"
    EMAIL_TIMEOUT = 20
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = DATA_DIR / "mail"

# --- Registry -------------------------------------------------------------------------------
REGISTRY_TOKEN_TTL = envint("HUB_REGISTRY_TOKEN_TTL", 300)
REGISTRY_REFRESH_TOKEN_TTL = envint("HUB_REGISTRY_REFRESH_TTL", 60 * 60 * 24 * 90)
# How often each process rereads the time of the last credentials revocation (accounts/revocation.py).
REVOCATION_REFRESH_SECONDS = envfloat("HUB_REVOCATION_REFRESH_SECONDS", 2.0)
REGISTRY_MAX_MANIFEST_BYTES = envint("HUB_MAX_MANIFEST_BYTES", 4 * 1024 * 1024)
REGISTRY_UPLOAD_CHUNK_BYTES = 1024 * 1024
# Served manifests remembered per process (registry/manifest_cache.py): bytes per process (0: off), and
# the longest an entry is served without the database being asked again.
HUB_MANIFEST_CACHE_BYTES = envint("HUB_MANIFEST_CACHE_BYTES", 16 * 1024 * 1024)
HUB_MANIFEST_CACHE_SECONDS = envfloat("HUB_MANIFEST_CACHE_SECONDS", 60.0)
REGISTRY_STALE_UPLOAD_HOURS = envfloat("HUB_STALE_UPLOAD_HOURS", 24)
REGISTRY_GC_GRACE_HOURS = envfloat("HUB_GC_GRACE_HOURS", 24)
DEFAULT_REPOSITORY_PRIVATE = envbool("HUB_DEFAULT_PRIVATE", False)
# Pull rate limits (registry/ratelimits.py): manifest GETs per window, per address for anonymous
# clients and per account for signed-in ones; 0 is off (Docker Hub: 100 and 200 per 6 hours).
HUB_PULL_LIMIT_ANONYMOUS = envint("HUB_PULL_LIMIT_ANONYMOUS", 0)
HUB_PULL_LIMIT_USER = envint("HUB_PULL_LIMIT_USER", 0)
HUB_PULL_LIMIT_WINDOW_SECONDS = envint("HUB_PULL_LIMIT_WINDOW_SECONDS", 6 * 3600)
# Requests per minute per address on every registry route (0: off); past it, a bare 429.
HUB_REGISTRY_ABUSE_LIMIT_PER_MINUTE = envint("HUB_REGISTRY_ABUSE_LIMIT_PER_MINUTE", 0)
for _name in ("HUB_PULL_LIMIT_ANONYMOUS", "HUB_PULL_LIMIT_USER", "HUB_REGISTRY_ABUSE_LIMIT_PER_MINUTE"):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]}: expected 0 (off) or a positive number")
if HUB_PULL_LIMIT_WINDOW_SECONDS < 1:
    raise ImproperlyConfigured(f"HUB_PULL_LIMIT_WINDOW_SECONDS={HUB_PULL_LIMIT_WINDOW_SECONDS}: expected seconds")
# Storage quotas and size limits (registry/services/quotas.py): bytes per namespace (0: none; staff
# set a namespace's own in the admin or the API), the largest blob, and how long one upload may take.
HUB_NAMESPACE_QUOTA_BYTES = envint("HUB_NAMESPACE_QUOTA_BYTES", 0)
HUB_MAX_BLOB_BYTES = envint("HUB_MAX_BLOB_BYTES", 10 * 1024**3)
HUB_MAX_UPLOAD_SECONDS = envint("HUB_MAX_UPLOAD_SECONDS", 24 * 3600)
if HUB_NAMESPACE_QUOTA_BYTES < 0:
    raise ImproperlyConfigured(f"HUB_NAMESPACE_QUOTA_BYTES={HUB_NAMESPACE_QUOTA_BYTES}: expected 0 (none) or bytes")
for _name in ("HUB_MAX_BLOB_BYTES", "HUB_MAX_UPLOAD_SECONDS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]}: expected a positive number")

# Audit log events older than this are deleted (accounts/audit.py, daily).
HUB_AUDIT_RETENTION_DAYS = envint("HUB_AUDIT_RETENTION_DAYS", 365)

# --- Webhooks -------------------------------------------------------------------------------
HUB_WEBHOOK_ALLOWED_NETWORKS = envlist("HUB_WEBHOOK_ALLOWED_NETWORKS")
HUB_WEBHOOK_BACKOFF_SECONDS = envfloat("HUB_WEBHOOK_BACKOFF_SECONDS", 60.0)

# --- Pull-through cache (registry/mirror; README, "Pull-through cache") -----------------------
def _mirror_settings():
    from registry.mirror import config as mirror_config  # plain parsers: no app is loaded here

    try:
        mirrors = mirror_config.parse_mirrors(env("HUB_MIRRORS"))
        hosts = mirror_config.parse_mirror_hosts(env("HUB_MIRROR_HOSTS"))
        readers = mirror_config.parse_mirror_readers(env("HUB_MIRROR_READERS"))
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None
    for setting, prefixes in (("HUB_MIRROR_HOSTS", hosts.values()), ("HUB_MIRROR_READERS", readers)):
        for prefix in prefixes:
            if prefix not in mirrors:
                raise ImproperlyConfigured(f"{setting}: {prefix!r} is not a mirror prefix of HUB_MIRRORS")
    return mirrors, hosts, readers


# prefix → Mirror; mirror host (lowercase, no port) → prefix; prefix → organizations allowed to read it
HUB_MIRRORS, HUB_MIRROR_HOSTS, HUB_MIRROR_READERS = _mirror_settings()
HUB_MIRROR_TTL_SECONDS = envint("HUB_MIRROR_TTL_SECONDS", 300)  # a tag is asked upstream at most this often
HUB_MIRROR_ANONYMOUS = envbool("HUB_MIRROR_ANONYMOUS", False)  # anonymous pulls of mirrored names
HUB_MIRROR_MAX_BYTES = envint("HUB_MIRROR_MAX_BYTES", 0)  # the cache's size; 0: unbounded
for _name in ("HUB_MIRROR_TTL_SECONDS", "HUB_MIRROR_MAX_BYTES"):
    if globals()[_name] < 0:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]}: expected a number of at least 0")
ALLOWED_HOSTS += [host if ":" not in host else f"[{host}]" for host in HUB_MIRROR_HOSTS]

# --- REST framework -------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # JWT first: its WWW-Authenticate makes "no credentials" a 401, distinct from a 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hub.api.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "hub.api.HubPagination",
    "EXCEPTION_HANDLER": "hub.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {"login": env("HUB_API_LOGIN_RATE", "30/min")},
    "NUM_PROXIES": 1 if HUB_BEHIND_PROXY else 0,  # X-Forwarded-For ignored unless behind a proxy
}
HUB_API_TOKEN_TTL = envint("HUB_API_TOKEN_TTL", 3600)  # seconds a /v2/users/login JWT lives
SPECTACULAR_SETTINGS = {
    "TITLE": "Wharf Hub API",
    "DESCRIPTION": "Docker Hub-compatible JSON API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs page loads a pinned swagger-ui from static/vendor/swagger-ui (no CDN).
    "SWAGGER_UI_DIST": "/static/vendor/swagger-ui",
    "SWAGGER_UI_FAVICON_HREF": "/static/vendor/swagger-ui/favicon-32x32.png",
    "SCHEMA_PATH_PREFIX": r"/v2",
}

# --- Internationalisation and logging -------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("HUB_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
HUB_SIGNUP_OPEN = envbool("HUB_SIGNUP_OPEN", True)

# --- Metrics (README, "Metrics") ------------------------------------------------------------
# Prometheus metrics are always counted; they are shown only to a bearer of this token (unset: /metrics is a 404).
HUB_METRICS_TOKEN = envsecret("HUB_METRICS_TOKEN").strip()
# A Celery worker serves its own metrics on this port (0: not at all), at this address.
HUB_WORKER_METRICS_PORT = envint("HUB_WORKER_METRICS_PORT", 0)
HUB_WORKER_METRICS_BIND = env("HUB_WORKER_METRICS_BIND", "127.0.0.1")

# --- Periodic tasks (one beat per cluster) --------------------------------------------------
CELERY_BEAT_SCHEDULE = {
    "flush-pull-counters": {"task": "registry.flush_pull_counters", "schedule": PULL_COUNTER_FLUSH_SECONDS},
    "cleanup-stale-uploads": {"task": "registry.cleanup_stale_uploads", "schedule": 3600.0},
    "collect-garbage": {"task": "registry.collect_garbage", "schedule": envfloat("HUB_GC_INTERVAL_SECONDS", 86400.0)},
    "run-retention-policies": {"task": "registry.run_retention_policies",
                               "schedule": envfloat("HUB_RETENTION_INTERVAL_SECONDS", 86400.0)},
    "prune-audit-events": {"task": "accounts.prune_audit_events", "schedule": 86400.0},
    "sweep-webhook-deliveries": {"task": "webhooks.sweep_deliveries",
                                 "schedule": envfloat("HUB_WEBHOOK_SWEEP_SECONDS", 10.0)},
}
PULL_BUFFER_WRITE_SECONDS = envfloat("HUB_PULL_BUFFER_SECONDS", min(5.0, PULL_COUNTER_FLUSH_SECONDS))
if HUB_MIRROR_MAX_BYTES:  # the pull-through cache's bound (registry/mirror/eviction.py)
    CELERY_BEAT_SCHEDULE["evict-mirrors"] = {"task": "registry.evict_mirrors",
                                             "schedule": envfloat("HUB_MIRROR_EVICT_SECONDS", 600.0)}

# --- Automated builds (builds/) -------------------------------------------------------------
# Off by default: `buildah --isolation chroot` is no sandbox for untrusted Dockerfiles (README).
HUB_BUILDS_ENABLED = envbool("HUB_BUILDS_ENABLED", False)
# Local Git sources (paths or file:// URLs) are accepted only under these directories.
HUB_BUILD_LOCAL_ROOTS = [str(Path(p).resolve()) for p in envlist("HUB_BUILD_LOCAL_ROOTS")]
# Where build workers push (plain HTTP is fine: it is meant to be the hub's own address).
HUB_INTERNAL_REGISTRY = env("HUB_INTERNAL_REGISTRY", f"127.0.0.1:{PORT}")
HUB_BUILD_CONCURRENCY_PER_NAMESPACE = envint("HUB_BUILD_CONCURRENCY_PER_NAMESPACE", 2)
HUB_BUILD_TIMEOUT_SECONDS = envint("HUB_BUILD_TIMEOUT_SECONDS", 3600)
HUB_BUILD_WORK_DIR = env("HUB_BUILD_WORK_DIR")  # workspaces; empty means the system temp dir
# A queued build's message that no worker took for this long is sent again (a broker that lost it).
HUB_BUILD_REDISPATCH_SECONDS = envint("HUB_BUILD_REDISPATCH_SECONDS", 600)
CELERY_BEAT_SCHEDULE["dispatch-queued-builds"] = {"task": "builds.tasks.dispatch_queued_builds_task",
                                                  "schedule": envfloat("HUB_BUILD_DISPATCH_SECONDS", 15.0)}
HUB_WEBHOOK_DISABLE_AFTER = envint("HUB_WEBHOOK_DISABLE_AFTER", 10)  # consecutive failed deliveries; 0 never
# Remote Git sources resolving into these networks (CIDRs) are fetched although they are not public
# addresses (a Git server on the LAN); every other loopback/private/link-local/reserved one is refused.
HUB_BUILD_ALLOWED_NETWORKS = envlist("HUB_BUILD_ALLOWED_NETWORKS")
# A build still running this long after HUB_BUILD_TIMEOUT_SECONDS lost its worker (Celery's hard time
# limit is the timeout + 300 s): the sweep marks it timed out.
HUB_BUILD_STALE_MARGIN_SECONDS = envint("HUB_BUILD_STALE_MARGIN_SECONDS", 600)
CELERY_BEAT_SCHEDULE["sweep-stale-builds"] = {"task": "builds.tasks.sweep_stale_builds_task",
                                              "schedule": envfloat("HUB_BUILD_SWEEP_SECONDS", 60.0)}
