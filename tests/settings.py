"""Test settings: the real settings module, fed a throwaway environment first."""

import os
import tempfile

os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="registryadmin-test-"))
os.environ.setdefault("BOOTSTRAP_ON_MIGRATE", "false")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz")
if os.environ.get("TEST_DATABASE_URL"):
    os.environ["DATABASE_URL"] = os.environ["TEST_DATABASE_URL"]

from registryadmin.settings import *  # noqa: F403
from registryadmin.settings import DATA_DIR, DATABASES

# Subprocesses (gunicorn, celery workers) must see the test database: keep SQLite's on disk.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    _worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-{_worker}.sqlite3")}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

PASSWORD_HASHERS = ["tests.hashers.FastPBKDF2PasswordHasher"]
HTPASSWD_BCRYPT_COST = 4  # the registry accepts any cost; tests need speed
