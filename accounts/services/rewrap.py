"""Moving every wrapped secret under the current KEY_ENCRYPTION_KEY, after a rotation.

What ``registryadmin.keywrap`` encrypts, and so what is rewrapped (``WRAPPED``): each signing key's
private half (``SigningKey.private_key``) and each registry's notification secret
(``NotificationEndpoint.secret``, and ``previous_secret`` while a rotation's grace lasts), and the
credential peppers a restored backup brought from another host (``CredentialPepper.pepper``). Robot,
personal access token and refresh-token secrets are not
encrypted but stored as keyed SHA-256 hashes (``accounts.registry.secrets``, keyed by SECRET_KEY and
its fallbacks): there is nothing to decrypt, so nothing to rewrap.

Rows are read in batches of ``BATCH_SIZE`` by primary key, each batch in its own transaction with its
rows locked (signing keys under the key-rotation lock too, so a rotation waits for a batch, never for
the run). Batches, not one transaction, because on SQLite a transaction holds the database's only
write lock, which every token request needs for its access record. There are seldom more than a few
dozen wrapped rows, so a run is usually one short batch per kind. The one ``admin_change`` record
(counts and the names of unreadable rows, never a secret) is written when the last batch is done: a
run cut short changed only which key encrypts the same plaintext, every row still reads, and the next
run finishes the work and records it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction

from accounts.models import CredentialPepper, NotificationEndpoint, SigningKey
from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record
from registryadmin import keywrap
from registryadmin.locks import SIGNING_KEYS, exclusive

BATCH_SIZE = 200
REMEDY = (
    "put the KEY_ENCRYPTION_KEY it was wrapped with in KEY_ENCRYPTION_KEY_FALLBACKS (or the old SECRET_KEY "
    "in SECRET_KEY_FALLBACKS, if no KEY_ENCRYPTION_KEY was set then), restart, and run rewrap_secrets again"
)


@dataclass(frozen=True)
class Wrapped:
    """A column whose values ``keywrap.wrap`` encrypted, and how to name one of its rows."""

    kind: str
    label: str
    model: type[models.Model]
    column: str
    describe: Callable[[Any], str]
    related: tuple[str, ...] = ()
    lock: int | None = None
    optional: bool = False  # an empty value (nothing stored) is not a secret to rewrap

    def rows(self) -> models.QuerySet:
        rows = self.model.objects.all()
        return rows.exclude(**{self.column: b""}) if self.optional else rows


WRAPPED = (
    Wrapped(
        "signing_key",
        "signing keys",
        SigningKey,
        "private_key",
        lambda key: f"signing key {key.kid} ({key.state})",
        lock=SIGNING_KEYS,
    ),
    Wrapped(
        "notification_secret",
        "notification secrets",
        NotificationEndpoint,
        "secret",
        lambda endpoint: f"notification secret of registry {endpoint.registry.service}",
        related=("registry",),
    ),
    Wrapped(
        "previous_notification_secret",
        "previous notification secrets (in their grace period)",
        NotificationEndpoint,
        "previous_secret",
        lambda endpoint: f"previous notification secret of registry {endpoint.registry.service}",
        related=("registry",),
        optional=True,
    ),
    Wrapped(
        "credential_pepper",
        "credential peppers kept from restored backups",
        CredentialPepper,
        "pepper",
        lambda kept: f"credential pepper {kept.fingerprint} ({kept.source})",
    ),
)


@dataclass
class Tally:
    """What one run found for one kind of wrapped secret (``total``: its rows when the run began)."""

    kind: str
    label: str
    total: int = 0
    rewrapped: int = 0
    current: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.rewrapped + self.current + len(self.unreadable)

    def counts(self) -> dict[str, int]:
        return {"rewrapped": self.rewrapped, "current": self.current, "unreadable": len(self.unreadable)}


@dataclass(frozen=True)
class Result:
    """Per kind: rewrapped, already under the current key, unreadable (by name)."""

    tallies: tuple[Tally, ...]
    dry_run: bool

    @property
    def rewrapped(self) -> int:
        return sum(tally.rewrapped for tally in self.tallies)

    @property
    def unreadable(self) -> list[str]:
        return [name for tally in self.tallies for name in tally.unreadable]


Progress = Callable[[Tally], None]


def rewrap_all(
    context: AuditContext,
    *,
    dry_run: bool = False,
    batch_size: int = BATCH_SIZE,
    progress: Progress | None = None,
) -> Result:
    """Re-encrypt every wrapped secret under the current key; with ``dry_run``, only count."""
    tallies = tuple(_rewrap_kind(spec, dry_run, batch_size, progress) for spec in WRAPPED)
    result = Result(tallies, dry_run)
    if not dry_run:
        _record(context, result)
    return result


def _rewrap_kind(spec: Wrapped, dry_run: bool, batch_size: int, progress: Progress | None) -> Tally:
    tally = Tally(spec.kind, spec.label, total=spec.rows().count())
    after = None
    while True:
        with _batch_transaction(spec, dry_run):
            rows = _batch(spec, after, batch_size, lock=not dry_run)
            moved = [row for row in rows if _rewrap_row(spec, row, tally)]
            if moved and not dry_run:
                spec.model.objects.bulk_update(moved, [spec.column])  # one statement a batch
        if not rows:
            return tally
        after = rows[-1].pk
        if progress is not None:
            progress(tally)


def _batch_transaction(spec: Wrapped, dry_run: bool) -> AbstractContextManager[Any]:
    if dry_run:
        return nullcontext()  # reads only: on SQLite a transaction would take the write lock
    return exclusive(spec.lock) if spec.lock is not None else transaction.atomic()


def _batch(spec: Wrapped, after: Any, size: int, *, lock: bool) -> list[Any]:
    rows = spec.rows().select_related(*spec.related).order_by("pk")
    if after is not None:
        rows = rows.filter(pk__gt=after)
    if lock:
        rows = rows.select_for_update(of=("self",))  # a concurrent rotation of this row waits, never lost
    return list(rows[:size])


def _rewrap_row(spec: Wrapped, row: Any, tally: Tally) -> bool:
    """Count ``row``, and put its ciphertext under the current key on it; True when that changed it."""
    try:
        moved = keywrap.rewrap(getattr(row, spec.column))
    except keywrap.KeyUnwrapError:
        tally.unreadable.append(spec.describe(row))
        return False
    if moved is None:
        tally.current += 1
        return False
    tally.rewrapped += 1
    setattr(row, spec.column, moved)
    return True


def _record(context: AuditContext, result: Result) -> None:
    record(
        Kind.ADMIN_CHANGE,
        "failure" if result.unreadable else "success",
        context,
        subject_type=SubjectType.USER if context.actor_id is not None else SubjectType.SYSTEM,
        detail={
            "action": "secrets.rewrap",
            "target": "wrapped secrets",
            "counts": {tally.kind: tally.counts() for tally in result.tallies},
            "unreadable": result.unreadable,
        },
    )


def describe(result: Result) -> Iterator[str]:
    """One line per kind, for the command and the bench."""
    verb = "would rewrap" if result.dry_run else "rewrapped"
    for tally in result.tallies:
        yield (
            f"{tally.label}: {verb} {tally.rewrapped}, already current {tally.current}, "
            f"unreadable {len(tally.unreadable)}"
        )
