"""Rendering the registry's configuration fragment and writing the files it names. Pure + edges.

``manage.py registry_config`` and ``rotate_signing_key`` and the registry pages share these, so the
fragment a page shows is the one the command prints, and "Prepare configuration" writes what it writes.

Was ``accounts/registry_config.py`` before the layout split.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import services
from accounts.models import BUNDLE_STATES, AuthMode, KeyState, NotificationEndpoint, Registry, SigningKey
from accounts.registry import htpasswd, keys
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record, record_change
from registryadmin.keywrap import unwrap

BUNDLE_NAME = "token-bundle.pem"
TOKEN_ADVICE = (
    "merge the fragment below into the registry's config.yml; enable storage.delete for deletes;"
    " restart the registry after each key rotation"
)
HTPASSWD_REWRITE_ADVICE = "it is rewritten after every change, the registry reloads it itself"
HTPASSWD_WARNINGS = (
    "WARNING: htpasswd mode checks passwords only and cannot enforce roles: any valid user can pull, push and "
    "delete in every repository.",
    "WARNING: htpasswd mode has no personal access tokens and no directory (LDAP) logins; robots still work.",
    "WARNING: htpasswd mode leaves no record of access attempts: the registry never asks us.",
)
HTPASSWD_ADVICE = "merge the fragment below into the registry's config.yml (no restart needed later)"


def default_output_dir(service: str) -> Path:
    return Path(settings.DATA_DIR) / "registry" / service


def bundle_path(service: str, output_dir: Path | None = None) -> Path:
    """Where the certificate bundle is written: ``--output-dir`` or ``DATA_DIR/registry/SERVICE``."""
    return (output_dir or default_output_dir(service)).resolve() / BUNDLE_NAME


def token_fragment(service: str, bundle: Path, secret: str) -> dict[str, Any]:
    """``auth`` + ``notifications`` for a registry that uses us as its token server."""
    return {
        "auth": {
            "token": {
                "realm": f"{settings.PUBLIC_URL}/auth/token",
                "service": service,
                "issuer": settings.TOKEN_ISSUER,
                "rootcertbundle": str(bundle.resolve()),
            }
        },
        "notifications": notifications(service, secret),
    }


def htpasswd_fragment(service: str, path: Path, secret: str) -> dict[str, Any]:
    """``auth`` + ``notifications`` for a registry that checks passwords in our htpasswd file."""
    return {
        "auth": {"htpasswd": {"realm": service or "registry", "path": str(path)}},
        "notifications": notifications(service, secret),
    }


def notifications(service: str, secret: str) -> dict[str, Any]:
    return {
        "endpoints": [
            {
                "name": "registryadmin",
                "url": f"{settings.PUBLIC_URL}/registry/{service}/events",
                "headers": {"Authorization": [f"Bearer {secret}"]},
                "timeout": "5s",
                "threshold": 5,
                "backoff": "10s",
            }
        ]
    }


def render(fragment: dict[str, Any]) -> str:
    return yaml.safe_dump(fragment, sort_keys=False, default_flow_style=False)


def whole_config(fragment: dict[str, Any]) -> dict[str, Any]:
    """A complete ``config.yml`` for Debian's ``docker-registry`` around ``fragment`` (the README's example).

    The fragment alone left a first-day admin guessing storage and http; these are the README's values,
    with ``storage.delete`` on because deletes through the dashboard's grants need it.
    """
    return {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {"filesystem": {"rootdirectory": "/var/lib/docker-registry"}, "delete": {"enabled": True}},
        "http": {"addr": ":5000", "secret": "change-me-to-a-random-string"},
        **fragment,
    }


def write_atomic(path: Path, content: str, mode: int) -> None:
    """Temp file in the same directory, fsync, rename: readers never see a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def missing_hash_advice(missing: Sequence[str]) -> str:
    """The users htpasswd mode does not know yet ("" when there are none)."""
    if not missing:
        return ""
    return (
        f"{len(missing)} users must reset password for htpasswd mode "
        f"(no bcrypt hash is known for them yet): {', '.join(missing)}"
    )


def htpasswd_advice(missing: Sequence[str]) -> list[str]:
    """The advice ``registry_config`` prints after writing the htpasswd file, in order."""
    lines = [*HTPASSWD_WARNINGS, missing_hash_advice(missing), HTPASSWD_ADVICE]
    return [line for line in lines if line]


# Edges: what the command (and the page's "Prepare configuration") writes -----


def prepare_token(registry: Registry, context: AuditContext, output_dir: Path | None = None) -> tuple[Path, str]:
    """Make the keys and the notification secret if missing, write the bundle; (bundle path, secret)."""
    services.ensure_keys(context)
    bundle = bundle_path(registry.service, output_dir)
    write_atomic(bundle, keys.bundle_pem(), 0o644)
    secret = services.notification_secret(registry, context)
    _record_prepared(context, registry, bundle)
    return bundle, secret


def prepare_htpasswd(registry: Registry, context: AuditContext) -> tuple[Path, str]:
    """Write the htpasswd file now (a registry started without it invents a user); (path, secret).

    Raises ``HtpasswdError`` or ``OSError`` when the file cannot be written.
    """
    path = htpasswd.path_for(registry).resolve()
    htpasswd.sync_all()
    if not path.is_file():
        raise htpasswd.HtpasswdError(f"the htpasswd file {path} was not written")
    secret = services.notification_secret(registry, context)
    _record_prepared(context, registry, path)
    return path, secret


def _record_prepared(context: AuditContext, registry: Registry, written: Path) -> None:
    """Which file was written for which mode, by whom (keys and secrets made on the way record themselves)."""
    with transaction.atomic():
        after = {"auth_mode": registry.auth_mode, "file": str(written)}
        record_change(context, "registry.prepare", registry.service, after=after, registry=registry.service)


def rewrite_bundles() -> list[tuple[str, Path]]:
    """After a rotation: rewrite the bundle files already written for token-mode registries."""
    rewritten = []
    for registry in Registry.objects.filter(auth_mode=AuthMode.TOKEN):
        bundle = bundle_path(registry.service)
        if bundle.exists():
            write_atomic(bundle, keys.bundle_pem(), 0o644)
            rewritten.append((registry.service, bundle))
    return rewritten


@dataclass(frozen=True)
class Rotation:
    """What a rotation attempt found and did; ``promoted`` is None when the preflight refused it."""

    preflight: list[keys.PreflightResult]
    promoted: SigningKey | None
    rewritten: list[tuple[str, Path]]

    @property
    def failed(self) -> list[keys.PreflightResult]:
        return [result for result in self.preflight if result.ok is False]


def rotate_after_preflight(context: AuditContext, *, force: bool) -> Rotation:
    """``rotate_signing_key``: ask every registry first; refuse when one would reject the next key, unless forced."""
    results = keys.preflight()
    failed = any(result.ok is False for result in results)
    _record_preflight(context, results, rotated=force or not failed)
    if failed and not force:
        return Rotation(results, None, [])
    promoted = services.rotate_signing_key(context)
    return Rotation(results, promoted, rewrite_bundles())


PREFLIGHT_ACTION = "signing_key.preflight"
REFUSED_ACTION = "signing_key.rotate_refused"


@dataclass(frozen=True)
class ScheduledRotation:
    """What the daily key check did: rotated (``rotation.promoted``), refused (``refusal``), or nothing due."""

    due: bool
    rotation: Rotation | None
    retired: str  # the kid of the previous key retired now, "" when none
    refusal: str  # why a due rotation did not happen, with the remedy; "" otherwise

    def summary(self) -> dict[str, Any]:
        promoted = self.rotation.promoted if self.rotation else None
        return {
            "due": self.due,
            "rotated_to": promoted.kid if promoted else None,
            "retired": self.retired or None,
            "refused": self.refusal or None,
            "preflight": [r.message for r in self.rotation.preflight] if self.rotation else [],
        }


def rotate_if_due(context: AuditContext, *, now: datetime | None = None) -> ScheduledRotation:
    """The scheduled check: retire a previous key whose tokens all expired, rotate a key past its age.

    A rotation goes through the same preflight as ``rotate_signing_key``. It is refused, and
    recorded with the remedy, while a token-mode registry has no URL (nothing can confirm that it
    loaded the next key; a second unattended rotation would drop the key a registry never restarted
    still trusts) unless ``ROTATE_WITHOUT_PREFLIGHT``, and when the preflight fails. Nothing is
    rotated then; the next run tries again.
    """
    now = now or timezone.now()
    retired = services.retire_previous_key(context, now=now)
    if retired is not None:
        rewrite_bundles()
    services.ensure_keys(context)
    current = SigningKey.objects.get(state=KeyState.CURRENT)
    age = services.key_age(current, now)
    if age < timedelta(days=settings.SIGNING_KEY_MAX_AGE_DAYS):
        return ScheduledRotation(False, None, retired.kid if retired else "", "")
    refusal = _blind_registries_refusal()
    rotation = None
    if not refusal:
        rotation = rotate_after_preflight(context, force=False)
        if rotation.promoted is None:
            failed = "; ".join(r.message.rstrip(".") for r in rotation.failed)
            refusal = (
                f"not rotated: {failed}. Restart each registry named so it loads the certificate bundle that holds"
                " the next key (the registry page has the bundle), then rotate from the keys page or wait for the"
                " next scheduled check."
            )
    if refusal:
        _record_refusal(context, current, age, refusal)
    return ScheduledRotation(True, rotation, retired.kid if retired else "", refusal)


def _blind_registries_refusal() -> str:
    if settings.ROTATE_WITHOUT_PREFLIGHT:
        return ""
    blind = list(Registry.objects.filter(auth_mode=AuthMode.TOKEN, url="").values_list("service", flat=True))
    if not blind:
        return ""
    names = ", ".join(blind)
    return (
        f"not rotated: token-mode registry {names} has no URL, so nothing can check that it trusts the next key."
        " Set its URL on its registry page (the preflight then asks it), or set ROTATE_WITHOUT_PREFLIGHT=true if"
        " every registry is restarted after each rotation."
    )


def _record_refusal(context: AuditContext, current: SigningKey, age: timedelta, refusal: str) -> None:
    with transaction.atomic():
        record(
            Kind.CREDENTIAL,
            "failure",
            context,
            subject_type=SubjectType.SYSTEM,
            detail={"action": REFUSED_ACTION, "current": current.kid, "age_days": age.days, "reason": refusal},
        )


def _record_preflight(context: AuditContext, results: list[keys.PreflightResult], *, rotated: bool) -> None:
    """Keep each registry's answer: the keys page shows the last one, auditors see refused rotations."""
    outcome = "failure" if any(result.ok is False for result in results) else "success"
    checked = [{"registry": r.registry, "ok": r.ok, "message": r.message} for r in results]
    with transaction.atomic():
        record(
            Kind.CREDENTIAL,
            outcome,
            context,
            subject_type=SubjectType.SYSTEM,
            detail={"action": PREFLIGHT_ACTION, "results": checked, "rotated": rotated},
        )


# Backups: what a backup carries of the registries' side, and what a restore writes back ---------


def backup_fragments() -> dict[str, str]:
    """Each registry's config.yml fragment as ``registry_config`` prints it, by ``fragments/<service>.yml``.

    Read only: a registry with no notification secret yet gets a placeholder, never a new secret.
    """
    fragments = {}
    for registry in Registry.objects.order_by("service"):
        endpoint = NotificationEndpoint.objects.filter(registry=registry).first()
        secret = unwrap(endpoint.secret).decode() if endpoint else "(none yet: run manage.py registry_config)"
        if registry.auth_mode == AuthMode.HTPASSWD:
            fragment = htpasswd_fragment(registry.service, htpasswd.path_for(registry), secret)
        else:
            fragment = token_fragment(registry.service, bundle_path(registry.service), secret)
        fragments[f"fragments/{registry.service}.yml"] = render(fragment)
    return fragments


def write_after_restore() -> list[Path]:
    """After a restore: every token-mode registry's certificate bundle and every htpasswd file, from the rows."""
    written = []
    if SigningKey.objects.filter(state__in=BUNDLE_STATES).exists():
        for registry in Registry.objects.filter(auth_mode=AuthMode.TOKEN):
            bundle = bundle_path(registry.service)
            write_atomic(bundle, keys.bundle_pem(), 0o644)
            written.append(bundle)
    htpasswd.sync_all()
    written += [htpasswd.path_for(r) for r in Registry.objects.filter(auth_mode=AuthMode.HTPASSWD)]
    return written
