"""What a backup holds: the configuration's rows, read out and written back, model by model.

``INCLUDED`` is every model a backup carries, parents before children (the order rows are written
back in); ``EXCLUDED`` names every other model with why it is left out. A test holds the two to
every model Django knows, so a new model must be placed in one of them on purpose.

Rows are Django's "python" serialization with plain primary keys (ids are kept: audit records
name people and things by id). Three fields hold values wrapped under this host's
KEY_ENCRYPTION_KEY, which the next host will not have: they are carried decrypted (the backup file
is encrypted as a whole) and wrapped again under the new host's key when written back.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

from django.apps import apps
from django.contrib.auth.models import Permission
from django.core import serializers
from django.core.management.color import no_style
from django.db import connections
from django.db.models import ManyToManyField, Model

from accounts.models import NotificationEndpoint, SigningKey
from registryadmin import keywrap

INCLUDED: tuple[str, ...] = (
    "auth.group",  # Django's groups (the admin site's permissions); users refer to them
    "accounts.user",  # with password hashes (Django's and the htpasswd bcrypt), groups and permissions
    "accounts.registry",
    "accounts.team",
    "accounts.directorygroup",  # directory groups mapped to teams
    "accounts.membership",  # with its sources: the local role and the directory groups (through rows)
    "accounts.repository",
    "accounts.robot",  # secret hashes (keyed with a pepper the backup carries), bcrypt, previous secret
    "accounts.grant",  # managed grants name the team grant they lie in (managed_by)
    "accounts.personalaccesstoken",
    "accounts.refreshtoken",
    "accounts.signingkey",  # private halves included, carried decrypted
    "accounts.notificationendpoint",  # the registries' notification secrets, carried decrypted
    "accounts.dismissedproposal",
    "accounts.reviewcampaign",
    "accounts.reviewitem",
    "accounts.expiryreminder",  # so a restored host does not mail every reminder again
)

# Carried inside their parent's rows (Django serializes a many-to-many on the model declaring it).
THROUGH: dict[str, str] = {
    "accounts.membership_directory_groups": "accounts.membership",
    "accounts.user_groups": "accounts.user",
    "accounts.user_user_permissions": "accounts.user",
    "auth.group_permissions": "auth.group",
}

EXCLUDED: dict[str, str] = {
    # The audit log is evidence, not configuration: a restore never deletes or rewrites it.
    # `manage.py export_audit` and retention are how it leaves the host (README: Backups).
    "audit.auditrecord": "the audit log (export_audit)",
    "audit.auditseal": "the audit log's seals",
    "audit.auditsegment": "the audit log's segments",
    "audit.auditsegmentchain": "the audit log's chain",
    "audit.auditverification": "the audit log's verification runs",
    "audit.auditrollup": "figures derived from the audit log",
    "audit.audithourly": "figures derived from the audit log",
    "audit.auditexport": "exports of the audit log on this host",
    "audit.seenevent": "registry event ids already taken in (duplicate filter)",
    "audit.blobeventcount": "figures derived from registry events",
    "audit.accessuse": "usage derived from the audit log (manage.py rebuild_usage)",
    "audit.accessuseday": "usage derived from the audit log (manage.py rebuild_usage)",
    # Made by migrate on every host; rows refer to them by natural key instead.
    "contenttypes.contenttype": "made by migrate",
    "auth.permission": "made by migrate (users' permissions are carried by natural key)",
    # State of this host and this moment, not configuration.
    "sessions.session": "web sessions: a restore ends them all",
    "admin.logentry": "Django admin's own history; every change made there is in the audit log",
    "accounts.authhold": "sign-in holds after failures: transient, lifted by time",
    "accounts.authzstate": "version tags of the token cache: made fresh on every host",
    "accounts.backup": "this host's backup runs and files",
    "accounts.credentialpepper": "carried decrypted in the backup's peppers, with this host's own",
    "accounts.doctorrun": "this host's doctor history",
}

# Values wrapped under KEY_ENCRYPTION_KEY: carried decrypted, wrapped again on the way back.
WRAPPED: dict[str, tuple[str, ...]] = {
    "accounts.signingkey": ("private_key",),
    "accounts.notificationendpoint": ("secret", "previous_secret"),
}
_ = (SigningKey, NotificationEndpoint)  # the models WRAPPED names

# Permissions differ in id from host to host: carried as (codename, app_label, model).
PERMISSION_FIELDS: dict[str, str] = {"accounts.user": "user_permissions", "auth.group": "permissions"}

Rows = dict[str, list[dict[str, Any]]]
Progress = Callable[[str, int], None]


def model(label: str) -> type[Model]:
    return apps.get_model(label)


def _permission_keys(using: str) -> dict[int, list[str]]:
    rows = Permission.objects.using(using).values_list(
        "pk", "codename", "content_type__app_label", "content_type__model"
    )
    return {pk: [codename, app, name] for pk, codename, app, name in rows}


def _records(label: str, using: str) -> Iterator[dict[str, Any]]:
    """Django's "python" serialization of every row; many-to-many values read apart, one query per field.

    Django's serializer builds (and throws away) a queryset per row and many-to-many field even when
    the rows were prefetched: at 10k users and 10k memberships that was three quarters of the dump.
    """
    cls = model(label)
    queryset = cls._default_manager.using(using).order_by("pk")
    many = [f for f in cls._meta.many_to_many if f.serialize and f.remote_field.through._meta.auto_created]
    if not many:
        yield from serializers.serialize("python", queryset.iterator(chunk_size=2000))
        return
    links = {field.name: _links(field, using) for field in many}
    local = [field.name for field in cls._meta.local_fields]  # every field but the many-to-many ones
    for record in serializers.serialize("python", queryset.iterator(chunk_size=2000), fields=local):
        for name, targets in links.items():
            record["fields"][name] = targets.get(record["pk"], [])
        yield record


def _links(field: ManyToManyField, using: str) -> dict[Any, list[Any]]:
    """A many-to-many field's target ids by source id, from its through table in one query.

    In the order Django's serializer gives them (the target model's ordering, then id), so a plan
    against a file written before shows no change.
    """
    left, right = field.m2m_field_name(), field.m2m_reverse_field_name()
    order = [
        f"-{right}__{name[1:]}" if name.startswith("-") else f"{right}__{name}"
        for name in field.related_model._meta.ordering
        if isinstance(name, str)
    ]
    rows = field.remote_field.through._default_manager.using(using).order_by(f"{left}_id", *order, f"{right}_id")
    found: dict[Any, list[Any]] = {}
    for source, target in rows.values_list(f"{left}_id", f"{right}_id").iterator(chunk_size=10_000):
        found.setdefault(source, []).append(target)
    return found


def dump(using: str = "default", progress: Progress | None = None) -> Rows:
    """Every included row, as plain data ready for JSON; ``progress(label, rows)`` after each model."""
    permissions = _permission_keys(using)
    rows: Rows = {}
    for label in INCLUDED:
        records = []
        for record in _records(label, using):
            fields = record["fields"]
            for name in WRAPPED.get(label, ()):
                fields[name] = _unwrapped(fields[name])
            if label in PERMISSION_FIELDS:
                name = PERMISSION_FIELDS[label]
                fields[name] = sorted(permissions[pk] for pk in fields[name])
            records.append({"pk": record["pk"], "fields": {k: _plain(v) for k, v in fields.items()}})
        rows[label] = records
        if progress:
            progress(label, len(records))
    return rows


def counts(rows: Rows) -> dict[str, int]:
    return {label: len(rows.get(label, ())) for label in INCLUDED}


def _unwrapped(value: str) -> str:
    """A wrapped value (base64 of the Fernet token) as base64 of the plaintext ("" stays "")."""
    token = base64.b64decode(value)
    return base64.b64encode(keywrap.unwrap(token)).decode() if token else ""


def _wrapped(value: str) -> str:
    plain = base64.b64decode(value)
    return base64.b64encode(keywrap.wrap(plain)).decode() if plain else ""


def _plain(value: Any) -> Any:
    """JSON-ready: datetimes as ISO text (Django reads them back), the rest as they are."""
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _objects(label: str, records: list[dict[str, Any]], using: str) -> Iterator[Any]:
    prepared = []
    for record in records:
        fields = dict(record["fields"])
        for name in WRAPPED.get(label, ()):
            fields[name] = _wrapped(fields.get(name) or "")
        prepared.append({"model": label, "pk": record["pk"], "fields": fields})
    # handle_forward_references=False: parents are written first, so every reference resolves.
    yield from serializers.deserialize("python", prepared, using=using, ignorenonexistent=True)


def load(rows: Rows, using: str = "default", progress: Progress | None = None, batch: int = 1000) -> dict[str, int]:
    """Write ``rows`` into empty tables (the caller clears them, in its transaction); returns counts."""
    written = {}
    for label in INCLUDED:
        cls = model(label)
        manager = cls._default_manager.db_manager(using)
        through: dict[str, list[Model]] = {}
        objects = []
        for item in _objects(label, rows.get(label, []), using):
            objects.append(item.object)
            for name, targets in (item.m2m_data or {}).items():
                field = cls._meta.get_field(name)
                link = field.remote_field.through
                left, right = field.m2m_field_name(), field.m2m_reverse_field_name()
                through.setdefault(name, []).extend(
                    link(**{f"{left}_id": item.object.pk, f"{right}_id": target}) for target in targets
                )
        manager.bulk_create(objects, batch_size=batch)
        for name, links in through.items():
            cls._meta.get_field(name).remote_field.through._default_manager.db_manager(using).bulk_create(
                links, batch_size=batch
            )
        written[label] = len(objects)
        if progress:
            progress(label, len(objects))
    _reset_sequences(using)
    return written


def clear(using: str = "default") -> None:
    """Delete every included row, children first (the caller holds the transaction)."""
    for label in reversed(INCLUDED):
        model(label)._default_manager.using(using).all().delete()


def count_rows(using: str) -> dict[str, int]:
    return {label: model(label)._default_manager.using(using).count() for label in INCLUDED}


def _reset_sequences(using: str) -> None:
    """PostgreSQL: the id sequences continue after the restored ids (SQLite needs nothing)."""
    connection = connections[using]
    models = [model(label) for label in INCLUDED]
    models += [f.remote_field.through for m in models for f in m._meta.many_to_many]
    statements = connection.ops.sequence_reset_sql(no_style(), models)
    if statements:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
