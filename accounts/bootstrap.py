"""First start: the default registry row and the first admin, made by ``migrate``."""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction

from accounts import services
from accounts.models import Registry, User
from audit.context import AuditContext

PASSWORD_FILE = "initial-admin-password"


def bootstrap_after_migrate(*, using: str = "default", verbosity: int = 1, stdout: Any = None, **_: Any) -> None:
    """post_migrate hook: seed once, then the database is the truth."""
    if not settings.BOOTSTRAP_ON_MIGRATE or using != "default":
        return
    seed_default_registry()
    message = ensure_admin()
    if message and verbosity:
        print(message, file=stdout or sys.stdout)


def seed_default_registry() -> Registry | None:
    """Create the registry row from REGISTRY_* unless any registry exists."""
    if Registry.objects.exists():
        return None
    return services.create_registry(
        settings.REGISTRY_SERVICE,
        url=settings.REGISTRY_URL,
        auth_mode=settings.REGISTRY_AUTH_MODE,
        context=AuditContext.system("bootstrap"),
    )


@transaction.atomic
def ensure_admin() -> str:
    """Create the first superuser when none exists; say where its password is."""
    if User.objects.filter(is_superuser=True).exists():
        return ""
    password = settings.ADMIN_PASSWORD
    generated = not password
    if generated:
        password = secrets.token_urlsafe(18)
    services.create_user(
        settings.ADMIN_USERNAME,
        password=password,
        is_superuser=True,
        validate=not generated,
        context=AuditContext.system("bootstrap"),
    )
    if not generated:
        return f"Created admin user {settings.ADMIN_USERNAME!r} with the password from ADMIN_PASSWORD."
    path = write_password_file(Path(settings.DATA_DIR), password)
    return f"Created admin user {settings.ADMIN_USERNAME!r}; its password is in {path} (mode 0600)."


def write_password_file(data_dir: Path, password: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / PASSWORD_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    os.chmod(path, 0o600)
    return path
