"""Restoring a backup: check it fits this host, show what would change, replace the configuration in one transaction.

Audit records are never touched; the restore itself is one ``admin_change`` record. Web sessions
end (people sign in again, as the restored accounts). The old host's credential peppers are kept
(wrapped under this host's key) so robots, PATs and refresh tokens made there keep working here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from django.contrib.sessions.models import Session
from django.db import connections, transaction
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder

from accounts.models import CredentialPepper, Grant, Membership, PersonalAccessToken, Robot, Team, User
from accounts.registry.secrets import fingerprint, own_peppers
from accounts.services.backups import contents
from accounts.services.backups.archive import BackupError, Contents
from audit.context import AuditContext
from audit.services import record_change
from registryadmin import keywrap

# Not shown as changes: bookkeeping that moves on every use.
QUIET_FIELDS = frozenset({"last_login", "last_used_at", "last_used_ip", "expiry_recorded_at", "last_used"})
# Shown as "(changed)", never with their values.
SECRET_FIELDS = frozenset(
    {
        "password",
        "htpasswd_hash",
        "secret_hash",
        "bcrypt_hash",
        "previous_secret_hash",
        "token_hash",
        "private_key",
        "secret",
        "previous_secret",
    }
)
LABELS: dict[str, tuple[str, ...]] = {
    "auth.group": ("name",),
    "accounts.user": ("username",),
    "accounts.registry": ("service",),
    "accounts.team": ("name",),
    "accounts.directorygroup": ("dn",),
    "accounts.repository": ("name",),
    "accounts.robot": ("name",),
    "accounts.grant": ("role", "pattern"),
    "accounts.personalaccesstoken": ("name",),
    "accounts.refreshtoken": ("service",),
    "accounts.signingkey": ("kid", "state"),
    "accounts.reviewcampaign": ("name",),
    "accounts.dismissedproposal": ("proposal", "subject", "pattern"),
}
LINES_PER_MODEL = 100  # the rest is counted ("... and 49,900 more"); --verbosity 2 shows every line


# --- Does it fit this host? --------------------------------------------------------------------


def applied_migrations(using: str = "default") -> dict[str, list[str]]:
    applied = MigrationRecorder(connections[using]).applied_migrations()
    found: dict[str, list[str]] = {}
    for app, name in sorted(applied):
        found.setdefault(app, []).append(name)
    return found


def check_schema(manifest: dict[str, Any], *, name: str, using: str = "default") -> None:
    """Refuse a backup from a newer schema (a migration this code does not know), or a database not migrated."""
    loader = MigrationLoader(connections[using], ignore_no_migrations=True)
    known = set(loader.disk_migrations)
    theirs = {(app, migration) for app, names in manifest.get("migrations", {}).items() for migration in names}
    newer = sorted(f"{app}.{migration}" for app, migration in theirs - known if app in loader.migrated_apps)
    if newer:
        raise BackupError(
            f"{name} comes from a newer registryadmin (schema {', '.join(newer[:3])}"
            f"{' and more' if len(newer) > 3 else ''} is not known here): upgrade registryadmin, then restore."
        )
    unapplied = sorted(f"{app}.{migration}" for app, migration in known - set(loader.applied_migrations))
    if unapplied:
        raise BackupError(
            f"this database is not fully migrated ({unapplied[0]} is not applied): run `manage.py migrate` first."
        )


def occupied(using: str = "default") -> list[str]:
    """What this host holds beyond a fresh install's bootstrap admin (empty: a restore needs no --force)."""
    found = []
    users = User.objects.using(using).count()
    if users > 1:
        found.append(f"{users} users")
    for model, noun in (
        (Team, "teams"),
        (Grant, "grants"),
        (Membership, "memberships"),
        (Robot, "robots"),
        (PersonalAccessToken, "personal access tokens"),
    ):
        count = model.objects.using(using).count()
        if count:
            found.append(f"{count} {noun}")
    return found


# --- What would change ------------------------------------------------------------------------


@dataclass
class Plan:
    lines: list[str] = field(default_factory=list)
    added: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)

    def summary(self) -> str:
        parts = []
        for label in contents.INCLUDED:
            counted = [
                f"{sign}{n}"
                for sign, n in (
                    ("+", self.added.get(label)),
                    ("-", self.removed.get(label)),
                    ("~", self.changed.get(label)),
                )
                if n
            ]
            if counted:
                parts.append(f"{_noun(label)} {' '.join(counted)}")
        return "; ".join(parts) or "no change"


def _noun(label: str) -> str:
    return contents.model(label)._meta.verbose_name_plural


Names = dict[tuple[str, Any], str]
# Rows named by what they link: (field, model it points to).
LINKS: dict[str, tuple[tuple[str, str], ...]] = {
    "accounts.membership": (("user", "accounts.user"), ("team", "accounts.team")),
    "accounts.grant": (("user", "accounts.user"), ("team", "accounts.team"), ("robot", "accounts.robot")),
    "accounts.personalaccesstoken": (("user", "accounts.user"),),
    "accounts.refreshtoken": (("user", "accounts.user"),),
    "accounts.robot": (("team", "accounts.team"),),
    "accounts.directorygroup": (("team", "accounts.team"),),
    "accounts.notificationendpoint": (("registry", "accounts.registry"),),
}


def _names(*sides: contents.Rows) -> Names:
    """(model, id) -> a readable name, from both sides (a removed row's team may exist only in one)."""
    names: Names = {}
    for rows in sides:
        for label in ("accounts.user", "accounts.team", "accounts.robot", "accounts.registry"):
            name = LABELS[label][0]
            names.update({(label, r["pk"]): str(r["fields"].get(name, "")) for r in rows.get(label, [])})
    return names


def _label(label: str, record: dict[str, Any], names: Names | None = None) -> str:
    fields = record["fields"]
    parts = [str(fields.get(name, "")) for name in LABELS.get(label, ())]
    for link, target in LINKS.get(label, ()):
        if fields.get(link) is not None:
            parts.append(f"{link} {(names or {}).get((target, fields[link]), '#' + str(fields[link]))}")
    shown = " ".join(part for part in parts if part)
    return f"{contents.model(label)._meta.verbose_name} #{record['pk']}" + (f" {shown}" if shown else "")


def _shown(name: str, value: Any) -> str:
    if name in SECRET_FIELDS:
        return "(secret)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plan(rows: contents.Rows, using: str = "default", *, every_line: bool = False) -> Plan:
    """``+``/``-``/``~`` lines from this database to ``rows``, by model and id."""
    current = contents.dump(using)
    names = _names(rows, current)
    result = Plan()
    for label in contents.INCLUDED:
        before = {r["pk"]: r for r in current.get(label, [])}
        after = {r["pk"]: r for r in rows.get(label, [])}
        lines: list[str] = []
        for pk in sorted(set(before) | set(after), key=str):
            if pk not in before:
                result.added[label] = result.added.get(label, 0) + 1
                lines.append(f"+ {_label(label, after[pk], names)}")
            elif pk not in after:
                result.removed[label] = result.removed.get(label, 0) + 1
                lines.append(f"- {_label(label, before[pk], names)}")
            else:
                differences = _differences(before[pk]["fields"], after[pk]["fields"])
                if differences:
                    result.changed[label] = result.changed.get(label, 0) + 1
                    lines.append(f"~ {_label(label, after[pk], names)}: {'; '.join(differences)}")
        shown = lines if every_line else lines[:LINES_PER_MODEL]
        result.lines += shown
        if len(lines) > len(shown):
            result.lines.append(
                f"  ... and {len(lines) - len(shown):,} more {_noun(label)} lines (--verbosity 2 shows all)"
            )
    return result


def _differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    out = []
    for name in sorted(set(before) | set(after)):
        if name in QUIET_FIELDS or before.get(name) == after.get(name):
            continue
        if name in SECRET_FIELDS:
            out.append(f"{name} (changed)")
        else:
            out.append(f"{name} {_shown(name, before.get(name))} -> {_shown(name, after.get(name))}")
    return out


# --- Replacing the configuration ---------------------------------------------------------------


def peppers_of(backup: Contents) -> list[bytes]:
    return [base64.b64decode(text) for text in backup.secrets.get("peppers", [])]


def _keep_peppers(backup: Contents, using: str) -> int:
    """Store the backup's peppers that this host does not derive itself; returns how many are kept."""
    own = set(own_peppers())
    source = f"backup of {backup.manifest.get('host', '?')} made {backup.manifest.get('created_at', '?')}"[:255]
    rows = []
    for pepper in dict.fromkeys(peppers_of(backup)):
        if pepper not in own:
            rows.append(CredentialPepper(pepper=keywrap.wrap(pepper), fingerprint=fingerprint(pepper), source=source))
    CredentialPepper.objects.using(using).bulk_create(rows)
    return len(rows)


def replace(backup: Contents, *, using: str = "default", progress: contents.Progress | None = None) -> dict[str, int]:
    """Empty the configuration tables and write the backup's rows (the caller holds the transaction)."""
    contents.clear(using)
    CredentialPepper.objects.using(using).all().delete()
    written = contents.load(backup.rows, using, progress=progress)
    _keep_peppers(backup, using)
    return written


def restore(
    backup: Contents,
    *,
    name: str,
    context: AuditContext,
    force: bool = False,
    progress: contents.Progress | None = None,
) -> dict[str, Any]:
    """Replace this host's configuration with ``backup``'s, in one transaction, recorded as one admin change."""
    check_schema(backup.manifest, name=name)
    with transaction.atomic():
        held = occupied()
        if held and not force:
            raise BackupError(
                f"this host already holds {', '.join(held)}: restoring would give their ids (which the audit log "
                "names) to other people. Restore onto a fresh install, or pass --force to replace them anyway."
            )
        written = replace(backup, progress=progress)
        kept = CredentialPepper.objects.count()
        sessions = Session.objects.all().delete()[0]
        after = {
            "file": name,
            "made": backup.manifest.get("created_at"),
            "host": backup.manifest.get("host"),
            "sha256": backup.manifest.get("members", {}).get("configuration.json", {}).get("sha256", ""),
            "counts": written,
            "peppers_kept": kept,
            "sessions_ended": sessions,
            "replaced": held,
        }
        record_change(context, "backup.restore", name, after=after)
    return after
