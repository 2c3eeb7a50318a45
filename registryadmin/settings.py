"""registryadmin settings, read from the environment (see README: Configuration)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import ldap
from django_auth_ldap.config import LDAPSearch

from registryadmin.env import (
    SMTP_BACKEND,
    USER_FILTER_ATTRIBUTE,
    cache_config,
    database_config,
    envbool,
    envchoice,
    envcrontab,
    envdn,
    envemail,
    envfilemode,
    envint,
    envldapfilter,
    envldapuri,
    envlist,
    envmailbox,
    envnetworks,
    envpassphrase,
    envreadablefile,
    envrecipients,
    envsecret,
    envsecretlist,
    envstr,
    envurl,
    mail_domain,
    read_or_create_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(envstr("DATA_DIR", str(BASE_DIR / "data"))).resolve()

DEBUG = envbool("DEBUG", False)
PORT = envint("PORT", 8000, minimum=1, maximum=65535)
PUBLIC_URL = envurl("PUBLIC_URL", f"http://127.0.0.1:{PORT}")
_public = urlsplit(PUBLIC_URL)

SECRET_KEY = envsecret("SECRET_KEY") or read_or_create_secret(DATA_DIR / "secret_key")
SECRET_KEY_FALLBACKS = [key.strip() for key in (envsecret("SECRET_KEY_FALLBACKS") or "").split(",") if key.strip()]
# Encrypts private signing keys and notification secrets at rest (registryadmin/keywrap.py); derived
# from SECRET_KEY when unset. New values are always wrapped with it; the fallbacks (old keys, during a
# rotation until ``manage.py rewrap_secrets`` has run) are only tried for reading.
KEY_ENCRYPTION_KEY = envsecret("KEY_ENCRYPTION_KEY")
KEY_ENCRYPTION_KEY_FALLBACKS = envsecretlist("KEY_ENCRYPTION_KEY_FALLBACKS")

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", [_public.hostname or "localhost", "localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = [f"{_public.scheme}://{_public.netloc}"]
TRUSTED_PROXIES = envnetworks("TRUSTED_PROXIES")

# Failed authentication (token endpoint and web sign-in), counted per (username, address) and per
# address over a sliding window in the shared cache; 0 turns a limit off. See accounts/services/limits.py.
AUTH_FAIL_LIMIT_USER = envint("AUTH_FAIL_LIMIT_USER", 10, minimum=0)
AUTH_FAIL_LIMIT_IP = envint("AUTH_FAIL_LIMIT_IP", 50, minimum=0)
AUTH_FAIL_WINDOW = envint("AUTH_FAIL_WINDOW", 600, minimum=10, maximum=7 * 86400)
AUTH_FAIL_MAX_BACKOFF = envint("AUTH_FAIL_MAX_BACKOFF", 3600, minimum=1, maximum=7 * 86400)
AUTH_LIMIT_EXEMPT_CIDRS = envnetworks("AUTH_LIMIT_EXEMPT_CIDRS")

REGISTRY_SERVICE = envstr("REGISTRY_SERVICE", "registry")
REGISTRY_URL = envstr("REGISTRY_URL", "")
if REGISTRY_URL:
    REGISTRY_URL = envurl("REGISTRY_URL", "")
REGISTRY_AUTH_MODE = envchoice("REGISTRY_AUTH_MODE", "token", ("token", "htpasswd"))
TOKEN_ISSUER = envstr("TOKEN_ISSUER", "registryadmin")
TOKEN_TTL = envint("TOKEN_TTL", 300, minimum=60, maximum=86400)
REFRESH_TOKEN_TTL = envint("REFRESH_TOKEN_TTL", 30 * 86400, minimum=300)
# Scheduled signing-key rotation (README: Rotating secrets): a key older than this is rotated through the
# preflight; never without a way to check every token-mode registry unless the operator says so.
SIGNING_KEY_MAX_AGE_DAYS = envint("SIGNING_KEY_MAX_AGE_DAYS", 30, minimum=1, maximum=3650)
ROTATE_WITHOUT_PREFLIGHT = envbool("ROTATE_WITHOUT_PREFLIGHT", False)
# A robot whose secret is older is listed on the home and team pages and its team's leads are mailed once.
ROBOT_SECRET_MAX_AGE_DAYS = envint("ROBOT_SECRET_MAX_AGE_DAYS", 90, minimum=1, maximum=3650)

# htpasswd mode: the registry runs bcrypt on every request, so the cost is a trade-off.
HTPASSWD_BCRYPT_COST = envint("HTPASSWD_BCRYPT_COST", 10, minimum=4, maximum=15)
HTPASSWD_GROUP = envstr("HTPASSWD_GROUP", "")
HTPASSWD_MODE = envfilemode("HTPASSWD_MODE", 0o640)
# Audit tamper evidence: a key that does not live in the database. Everything new is made with it; the
# fallbacks (earlier keys, kept while records they made are retained) only verify (README: Rotating secrets).
AUDIT_HMAC_KEY = envsecret("AUDIT_HMAC_KEY") or read_or_create_secret(DATA_DIR / "audit_hmac_key")
AUDIT_HMAC_KEY_FALLBACKS = envsecretlist("AUDIT_HMAC_KEY_FALLBACKS")
AUDIT_SEAL_LAG = envint("AUDIT_SEAL_LAG", 5, minimum=0, maximum=3600)  # seconds a record waits before sealing
AUDIT_RETENTION_DAYS = {
    "access": envint("AUDIT_RETENTION_ACCESS_DAYS", 90, minimum=1),
    "registry_event": envint("AUDIT_RETENTION_REGISTRY_EVENT_DAYS", 365, minimum=1),
    "signin": envint("AUDIT_RETENTION_SIGNIN_DAYS", 365, minimum=1),
    "job": envint("AUDIT_RETENTION_JOB_DAYS", 90, minimum=1),
    "credential": envint("AUDIT_RETENTION_CREDENTIAL_DAYS", 7 * 365, minimum=1),
    "admin_change": envint("AUDIT_RETENTION_ADMIN_CHANGE_DAYS", 7 * 365, minimum=1),
}
ADMIN_USERNAME = envstr("ADMIN_USERNAME", "admin")
ADMIN_PASSWORD = envsecret("ADMIN_PASSWORD")
# migrate creates the first admin and the default registry row; tests turn it off.
BOOTSTRAP_ON_MIGRATE = envbool("BOOTSTRAP_ON_MIGRATE", True)

INSTALLED_APPS = [
    "accounts",
    "audit",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
]

MIDDLEWARE = [
    # First: the client address and https-ness that trusted proxies vouch for, before anything reads them.
    "registryadmin.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "registryadmin.middleware.SecurityHeadersMiddleware",
    "registryadmin.middleware.RequestShapeMiddleware",
    "registryadmin.faults.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The token endpoint's chain (registryadmin.handler): the same list without what means nothing to a
# registry client (static files, sessions, CSRF, the signed-in user, messages, htmx).
TOKEN_PATH = "/auth/token"
_NOT_FOR_TOKENS = {
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
}
TOKEN_MIDDLEWARE = [name for name in MIDDLEWARE if name not in _NOT_FOR_TOKENS]

ROOT_URLCONF = "registryadmin.urls"
WSGI_APPLICATION = "registryadmin.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:home"
LOGOUT_REDIRECT_URL = "accounts:login"

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
            ],
        },
    },
]


DATABASE_URL = envsecret("DATABASE_URL") or f"sqlite:///{DATA_DIR / 'registryadmin.sqlite3'}"
DATABASES = {"default": database_config(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One cache for every worker and host: failed-sign-in counts now, later the LDAP bind cache.
CACHE_URL = envsecret("CACHE_URL") or "db://"
CACHES = {"default": cache_config(CACHE_URL)}

# Directory (LDAP) sign-in, groups to teams and the sync; off while LDAP_SERVER_URI is unset.
# See accounts/services/directory.py and the README's "Directory users".
LDAP_SERVER_URI = envldapuri("LDAP_SERVER_URI")
LDAP_ENABLED = bool(LDAP_SERVER_URI)
LDAP_BIND_DN = envdn("LDAP_BIND_DN")
LDAP_BIND_PASSWORD = envsecret("LDAP_BIND_PASSWORD") or ""
LDAP_USER_SEARCH_BASE = envdn("LDAP_USER_SEARCH_BASE", required=LDAP_ENABLED)
LDAP_USER_FILTER = envldapfilter("LDAP_USER_FILTER", "(uid=%(user)s)")
LDAP_USERNAME_ATTR = USER_FILTER_ATTRIBUTE.search(LDAP_USER_FILTER).group(1)  # type: ignore[union-attr]
LDAP_GROUP_SEARCH_BASE = envdn("LDAP_GROUP_SEARCH_BASE")
LDAP_GROUP_TYPE = envchoice(
    "LDAP_GROUP_TYPE", "groupOfNames", ("groupOfNames", "groupOfUniqueNames", "posixGroup", "activeDirectory")
)
LDAP_START_TLS = envbool("LDAP_START_TLS", False)
LDAP_CA_FILE = envreadablefile("LDAP_CA_FILE")
LDAP_ATTR_EMAIL = envstr("LDAP_ATTR_EMAIL", "mail")
LDAP_ATTR_FIRST_NAME = envstr("LDAP_ATTR_FIRST_NAME", "givenName")
LDAP_ATTR_LAST_NAME = envstr("LDAP_ATTR_LAST_NAME", "sn")
LDAP_TIMEOUT = envint("LDAP_TIMEOUT", 5, minimum=1, maximum=300)
LDAP_BIND_CACHE_TTL = envint("LDAP_BIND_CACHE_TTL", 60, minimum=0, maximum=86400)
LDAP_DEACTIVATE_MISSING = envbool("LDAP_DEACTIVATE_MISSING", True)
LDAP_ADMIN_GROUP = envdn("LDAP_ADMIN_GROUP")
LDAP_AUDITOR_GROUP = envdn("LDAP_AUDITOR_GROUP")
if LDAP_ENABLED and (LDAP_ADMIN_GROUP or LDAP_AUDITOR_GROUP) and not LDAP_GROUP_SEARCH_BASE:
    LDAP_GROUP_SEARCH_BASE = envdn("LDAP_GROUP_SEARCH_BASE", required=True)  # names the missing variable
# Sign-in finds a person's groups under the base: a flag group outside it would be lost at every sign-in.
LDAP_ADMIN_GROUP = envdn("LDAP_ADMIN_GROUP", within=LDAP_GROUP_SEARCH_BASE)
LDAP_AUDITOR_GROUP = envdn("LDAP_AUDITOR_GROUP", within=LDAP_GROUP_SEARCH_BASE)
# What each group type stores its members in, and the filter that finds groups (the sync reads them itself).
LDAP_GROUP_MEMBER_ATTR = {"groupOfUniqueNames": "uniqueMember", "posixGroup": "memberUid"}.get(
    LDAP_GROUP_TYPE, "member"
)
LDAP_GROUP_FILTER = {
    "groupOfNames": "(objectClass=groupOfNames)",
    "groupOfUniqueNames": "(objectClass=groupOfUniqueNames)",
    "posixGroup": "(objectClass=posixGroup)",
    "activeDirectory": "(objectClass=*)",  # AD's groups are objectClass=group; nested through member
}[LDAP_GROUP_TYPE]

AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"]
if LDAP_ENABLED:
    AUTHENTICATION_BACKENDS.append("accounts.services.directory.DirectoryBackend")
    # django-auth-ldap reads these; they are derived from the LDAP_* names above, never set directly.
    AUTH_LDAP_SERVER_URI = LDAP_SERVER_URI
    AUTH_LDAP_BIND_DN = LDAP_BIND_DN
    AUTH_LDAP_BIND_PASSWORD = LDAP_BIND_PASSWORD
    AUTH_LDAP_USER_SEARCH = LDAPSearch(LDAP_USER_SEARCH_BASE, ldap.SCOPE_SUBTREE, LDAP_USER_FILTER)
    AUTH_LDAP_USER_ATTR_MAP = {
        "email": LDAP_ATTR_EMAIL,
        "first_name": LDAP_ATTR_FIRST_NAME,
        "last_name": LDAP_ATTR_LAST_NAME,
    }
    AUTH_LDAP_ALWAYS_UPDATE_USER = True
    AUTH_LDAP_START_TLS = LDAP_START_TLS
    # A directory that drops packets must never hang a worker: connect and every operation time out.
    AUTH_LDAP_CONNECTION_OPTIONS = {
        ldap.OPT_NETWORK_TIMEOUT: LDAP_TIMEOUT,
        ldap.OPT_TIMEOUT: LDAP_TIMEOUT,
        ldap.OPT_REFERRALS: 0,
    }
    if LDAP_CA_FILE:
        AUTH_LDAP_CONNECTION_OPTIONS[ldap.OPT_X_TLS_CACERTFILE] = LDAP_CA_FILE
        AUTH_LDAP_CONNECTION_OPTIONS[ldap.OPT_X_TLS_REQUIRE_CERT] = ldap.OPT_X_TLS_DEMAND
        AUTH_LDAP_CONNECTION_OPTIONS[ldap.OPT_X_TLS_NEWCTX] = 0  # last: applies the TLS options above

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

_https = _public.scheme == "https"
SESSION_COOKIE_SECURE = _https
CSRF_COOKIE_SECURE = _https
SESSION_COOKIE_AGE = envint("SESSION_TTL", 8 * 3600, minimum=300)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Sent only on requests that are https (directly, or X-Forwarded-Proto from a TRUSTED_PROXIES hop).
SECURE_HSTS_SECONDS = envint("HSTS_SECONDS", 31536000, minimum=0) if _https else 0
# No inline script or style anywhere: every script is a static file (htmx is vendored).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Request bodies above this are refused with 413 before anything parses them (notification
# envelopes are the largest bodies we take: a registry sends a few events per envelope).
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("MAX_REQUEST_BODY", 2_621_440, minimum=65_536)

# Outgoing mail, named once for every feature that sends it (access reviews, expiry reminders, rotation
# alerts; see registryadmin/mail.py): EMAIL_URL, or EMAIL_HOST and its companions. With neither, the
# console backend prints each mail in the server's output (what `make run` does), and EMAIL_CONFIGURED
# is false so pages can say that mail is not configured.
_mail = envemail()
EMAIL_BACKEND = _mail["EMAIL_BACKEND"]
EMAIL_HOST = _mail["EMAIL_HOST"]
EMAIL_PORT = _mail["EMAIL_PORT"]
EMAIL_HOST_USER = _mail["EMAIL_HOST_USER"]
EMAIL_HOST_PASSWORD = _mail["EMAIL_HOST_PASSWORD"]
EMAIL_USE_TLS = _mail["EMAIL_USE_TLS"]
EMAIL_USE_SSL = _mail["EMAIL_USE_SSL"]
EMAIL_TIMEOUT = _mail["EMAIL_TIMEOUT"]
EMAIL_FILE_PATH = _mail["EMAIL_FILE_PATH"]
EMAIL_CONFIGURED = EMAIL_BACKEND == SMTP_BACKEND  # console:// and file:// reach nobody
_mail_from = f"registryadmin@{mail_domain(_public.hostname or 'localhost')}"
DEFAULT_FROM_EMAIL = envmailbox("DEFAULT_FROM_EMAIL", _mail_from)
SERVER_EMAIL = envmailbox("SERVER_EMAIL", _mail_from)  # the From of Django's own error mails

# Access reviews (accounts/services/reviews.py): days a campaign gives its reviewers, and how many days
# before the deadline the leads with waiting items are reminded once (0: no reminder). Expiry reminders
# (accounts/services/reminders.py): days before a grant, robot or token expires that its people are told.
ACCESS_REVIEW_DEADLINE_DAYS = envint("ACCESS_REVIEW_DEADLINE_DAYS", 14, minimum=1, maximum=365)
ACCESS_REVIEW_REMIND_DAYS = envint("ACCESS_REVIEW_REMIND_DAYS", 3, minimum=0, maximum=365)
EXPIRY_REMINDER_DAYS = envint("EXPIRY_REMINDER_DAYS", 7, minimum=1, maximum=365)

# Configuration backups (accounts/services/backups/; README: Backups). BACKUP_KEY is the passphrase the
# files are encrypted with (age, scrypt): any non-empty string; keep it off this host, a restore needs it.
BACKUP_DIR = Path(envstr("BACKUP_DIR", str(DATA_DIR / "backups"))).resolve()
BACKUP_KEY = envpassphrase("BACKUP_KEY")
# Public-key mode instead: backups are encrypted to these age recipients (BACKUP_KEY is then not used to
# write); reading one back needs an identity (private key) file, which need not live on this host.
BACKUP_RECIPIENTS = envrecipients("BACKUP_RECIPIENTS")
BACKUP_IDENTITY_FILE = envreadablefile("BACKUP_IDENTITY_FILE")
# Run with the new file's path as the last argument (e.g. "rclone copyto --immutable" or a script).
BACKUP_COPY_COMMAND = envstr("BACKUP_COPY_COMMAND", "")
BACKUP_COPY_TIMEOUT = envint("BACKUP_COPY_TIMEOUT", 600, minimum=1, maximum=86400)
BACKUP_KEEP_DAILY = envint("BACKUP_KEEP_DAILY", 7, minimum=0, maximum=3660)
BACKUP_KEEP_WEEKLY = envint("BACKUP_KEEP_WEEKLY", 4, minimum=0, maximum=520)
BACKUP_KEEP_MONTHLY = envint("BACKUP_KEEP_MONTHLY", 12, minimum=0, maximum=1200)

# The JSON API under /api/ (accounts.api): a personal access token (Authorization: Bearer rga_...)
# or the browser session with its CSRF token; one error shape (accounts.api.errors).
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.AccessTokenAuthentication",
        "accounts.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.SignedIn"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "accounts.api.pagination.Pages",
    "DEFAULT_SCHEMA_CLASS": "accounts.api.schema.Schema",
    "EXCEPTION_HANDLER": "accounts.api.errors.handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "registryadmin API",
    "DESCRIPTION": (
        "Users, teams, repositories, grants, robots, personal access tokens, registries, signing keys, "
        "jobs, the audit log and access answers, with the same rules as the dashboard. Authenticate with "
        "`Authorization: Bearer rga_...` (a personal access token) or the browser session (with its CSRF "
        "token). Errors are one JSON shape: `{status, error, detail, fields}`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["accounts.api.permissions.SignedIn"],
    "SERVE_AUTHENTICATION": [
        "accounts.api.authentication.AccessTokenAuthentication",
        "accounts.api.authentication.SessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {},
    "SCHEMA_PATH_PREFIX": "/api/",
    "AUTHENTICATION_WHITELIST": [
        "accounts.api.authentication.AccessTokenAuthentication",
        "accounts.api.authentication.SessionAuthentication",
    ],
}

# /metrics (Prometheus text format): a scraper presents METRICS_TOKEN as a bearer token (compared in
# constant time), or comes from METRICS_ALLOWED_CIDRS (the client address as TRUSTED_PROXIES make it);
# with neither set, /metrics answers 403 naming both.
METRICS_TOKEN = envsecret("METRICS_TOKEN") or ""
METRICS_ALLOWED_CIDRS = envnetworks("METRICS_ALLOWED_CIDRS")

# Celery: Redis in production; with no broker configured, kombu's filesystem
# transport under DATA_DIR so `make run` needs no server at all.
CELERY_BROKER_URL = envsecret("CELERY_BROKER_URL") or "filesystem://"
# Seconds a web request waits for the broker before it says the job queue is down (publish and connect).
BROKER_TIMEOUT = 2
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_TIMEOUT
# One quick retry covers a pooled connection the broker closed; more would only make the page wait.
# (CELERY_BROKER_CONNECTION_RETRY is left on: it is the worker's reconnect loop, not publishing.)
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
_queue_dir = DATA_DIR / "celery" / "queue"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _folder in (_queue_dir, DATA_DIR / "celery" / "processed", DATA_DIR / "celery" / "control"):
        _folder.mkdir(parents=True, exist_ok=True)  # kombu does not create them
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(DATA_DIR / "celery" / "processed"),
        "store_processed": False,
        "control_folder": str(DATA_DIR / "celery" / "control"),  # kombu's default is ./control
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://", "unix://")):
    # A broker that accepts the connection and then says nothing must not hang a web request:
    # every read and connect gives up after BROKER_TIMEOUT (the worker's BRPOP waits 1 s, well under).
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": BROKER_TIMEOUT,
        "socket_timeout": BROKER_TIMEOUT,
        "max_retries": 1,
    }
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False


CELERY_BEAT_SCHEDULE = {
    "seal-audit": {
        "task": "audit.tasks.seal_audit",
        "schedule": envcrontab("SCHEDULE_SEAL_AUDIT", "* * * * *"),
        "options": {"expires": 50},
    },
    "verify-audit": {
        "task": "audit.tasks.verify_audit",
        "schedule": envcrontab("SCHEDULE_VERIFY_AUDIT", "30 3 * * *"),
        "options": {"expires": 3600},
    },
    "audit-retention": {
        "task": "audit.tasks.apply_retention",
        "schedule": envcrontab("SCHEDULE_AUDIT_RETENTION", "0 4 * * *"),
        "options": {"expires": 3600},
    },
    "sync-htpasswd": {
        "task": "accounts.tasks.sync_htpasswd",
        "schedule": envcrontab("SCHEDULE_SYNC_HTPASSWD", "* * * * *"),
        "options": {"expires": 50},
    },
    "rotate-signing-key": {
        "task": "accounts.tasks.rotate_signing_key",
        "schedule": envcrontab("SCHEDULE_ROTATE_SIGNING_KEY", "20 2 * * *"),
        "options": {"expires": 3600},
    },
    "robot-secret-age": {
        "task": "accounts.tasks.robot_secret_age",
        "schedule": envcrontab("SCHEDULE_ROBOT_SECRET_AGE", "10 7 * * *"),
        "options": {"expires": 3600},
    },
    "purge-expired-grants": {
        "task": "accounts.tasks.purge_expired_grants",
        "schedule": envcrontab("SCHEDULE_PURGE_EXPIRED_GRANTS", "*/5 * * * *"),
        "options": {"expires": 240},
    },
    "start-access-review": {
        "task": "accounts.tasks.start_access_review",
        "schedule": envcrontab("SCHEDULE_ACCESS_REVIEW", "0 6 1 1,4,7,10 *"),
        "options": {"expires": 3600},
    },
    "check-access-reviews": {
        "task": "accounts.tasks.check_access_reviews",
        "schedule": envcrontab("SCHEDULE_ACCESS_REVIEW_CHECKS", "15 * * * *"),
        "options": {"expires": 3000},
    },
    "backup": {
        "task": "accounts.tasks.backup",
        "schedule": envcrontab("SCHEDULE_BACKUP", "40 1 * * *"),
        "options": {"expires": 3600},
    },
    "expiry-reminders": {
        "task": "accounts.tasks.send_expiry_reminders",
        "schedule": envcrontab("SCHEDULE_EXPIRY_REMINDERS", "0 7 * * *"),
        "options": {"expires": 3600},
    },
    "doctor-registries": {
        "task": "accounts.tasks.doctor_registries",
        "schedule": envcrontab("SCHEDULE_DOCTOR", "50 6 * * *"),
        "options": {"expires": 3600},
    },
}
_sync_ldap = envcrontab("SCHEDULE_SYNC_LDAP", "0 * * * *")
if LDAP_ENABLED:
    CELERY_BEAT_SCHEDULE["sync-ldap"] = {
        "task": "accounts.tasks.sync_ldap",
        "schedule": _sync_ldap,
        "options": {"expires": 3000},
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
}
