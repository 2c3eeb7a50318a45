"""The version tags that make cached token decisions exact: triggers, reads, bumps and the write guard.

A token worker caches what its decisions read (users, teams, grants, ...) and tags the cache with
the ``authz`` version it read first. Every change to those tables changes the version in the same
transaction, through triggers installed here after every ``migrate`` (so raw SQL, the admin and
bulk updates count as well as the services). The access record's INSERT carries the tag
(``guard``): when the version moved, it writes nothing and the worker reloads and decides again.

``limits`` moves on every failed sign-in that is counted, so a worker that skipped the shared
failure counts for a (username, address) it knew clean learns at once that it may no longer.

Versions are fresh values (PostgreSQL: a sequence; SQLite: ``random()``), never ``version + 1``:
a rolled-back change must not give its number to the next one, or a cache tagged with it would pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Model

from accounts.models import (
    AuthzState,
    CredentialPepper,
    DirectoryGroup,
    Grant,
    Membership,
    PersonalAccessToken,
    Registry,
    Repository,
    Robot,
    SigningKey,
    Team,
    User,
)

AUTHZ = "authz"
LIMITS = "limits"
STATE_TABLE = AuthzState._meta.db_table
SEQUENCE = f"{STATE_TABLE}_seq"
PG_FUNCTION = "accounts_authz_bump"
TRIGGER_PREFIX = "authz_bump"

# Columns whose changes no decision reads: bookkeeping written on the hot path or by jobs.
# Every other column of a watched table changes the version (tests/registry/test_token_cache.py
# lists them all, so a new column is watched unless it is added here on purpose).
_CREDENTIAL_BOOKKEEPING = frozenset({"last_used_at", "last_used_ip", "expiry_recorded_at"})
UNWATCHED_COLUMNS: dict[type[Model], frozenset[str]] = {
    User: frozenset({"last_login"}),
    Robot: _CREDENTIAL_BOOKKEEPING,
    PersonalAccessToken: _CREDENTIAL_BOOKKEEPING,
}


def watched_models() -> list[type[Model]]:
    """Every table a token decision reads (the M2M of directory-derived memberships included)."""
    through = Membership.directory_groups.through
    return [
        User,
        Team,
        Membership,
        through,
        DirectoryGroup,
        Grant,
        Registry,
        Repository,
        Robot,
        PersonalAccessToken,
        SigningKey,
        CredentialPepper,
    ]


def watched_tables() -> dict[str, list[str]]:
    """table -> the columns whose change moves the version."""
    tables = {}
    for model in watched_models():
        skip = UNWATCHED_COLUMNS.get(model, frozenset())
        columns = [f.column for f in model._meta.concrete_fields if f.column not in skip and not f.primary_key]
        tables[model._meta.db_table] = columns
    return tables


# --- Triggers -------------------------------------------------------------------------------------


def _fresh_value() -> str:
    return f"nextval('{SEQUENCE}')" if connection.vendor == "postgresql" else "random()"


def _quoted(name: str) -> str:
    return connection.ops.quote_name(name)


def trigger_statements() -> list[str]:
    """DDL that (re)creates every trigger for the current columns; safe to run again."""
    statements = []
    bump = f"UPDATE {STATE_TABLE} SET version = {_fresh_value()} WHERE name = '{AUTHZ}'"
    if connection.vendor == "postgresql":
        statements += [
            f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}",
            f"CREATE OR REPLACE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {bump}; RETURN NULL; END $$",
        ]
    for table, columns in watched_tables().items():
        quoted = ", ".join(_quoted(c) for c in columns)
        if connection.vendor == "postgresql":
            # One bump per statement; TRUNCATE too (it fires no row triggers).
            for suffix, event in (("write", f"INSERT OR DELETE OR UPDATE OF {quoted}"), ("truncate", "TRUNCATE")):
                name = f"{TRIGGER_PREFIX}_{suffix}"
                statements += [
                    f"DROP TRIGGER IF EXISTS {name} ON {_quoted(table)}",
                    f"CREATE TRIGGER {name} AFTER {event} ON {_quoted(table)} "
                    f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()",
                ]
            continue
        # SQLite: row triggers only; a table rebuilt by a later migration loses its triggers,
        # which is why they are installed after every migrate rather than by one migration.
        for suffix, event in (("insert", "INSERT"), ("delete", "DELETE"), ("update", f"UPDATE OF {quoted}")):
            name = f"{TRIGGER_PREFIX}_{table}_{suffix}"
            statements += [
                f"DROP TRIGGER IF EXISTS {name}",
                f"CREATE TRIGGER {name} AFTER {event} ON {_quoted(table)} BEGIN {bump}; END",
            ]
    return statements


def install_after_migrate(sender: object, using: str = "default", **_: object) -> None:
    """post_migrate receiver: the triggers follow the tables (a rebuilt SQLite table loses its own)."""
    if using == connection.alias:
        install_triggers()


def install_triggers() -> None:
    with connection.cursor() as cursor:
        for statement in trigger_statements():
            cursor.execute(statement)
    read_state()  # makes the rows if they are missing


# --- Reading and moving the versions ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class State:
    authz: int
    limits: int


def read_state() -> State:
    """Both versions (one query); rows lost to a flush or a restore are made again with fresh values."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT name, version FROM {STATE_TABLE}")
        found = dict(cursor.fetchall())
        if AUTHZ not in found or LIMITS not in found:
            _make_rows(cursor)
            cursor.execute(f"SELECT name, version FROM {STATE_TABLE}")
            found = dict(cursor.fetchall())
    return State(found[AUTHZ], found[LIMITS])


def _make_rows(cursor) -> None:
    if connection.vendor == "postgresql":
        cursor.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQUENCE}")
    for name in (AUTHZ, LIMITS):
        cursor.execute(
            f"INSERT INTO {STATE_TABLE} (name, version) SELECT %s, {_fresh_value()} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {STATE_TABLE} WHERE name = %s)",
            [name, name],
        )


def bump(name: str) -> None:
    """Move one version (``LIMITS`` from the failure counter; ``AUTHZ`` is the triggers' job)."""
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {STATE_TABLE} SET version = {_fresh_value()} WHERE name = %s", [name])


def guard(state: State, *, limits: bool) -> tuple[str, list[int]]:
    """A WHERE condition that holds only while the versions are still ``state``'s."""
    sql = f"(SELECT version FROM {STATE_TABLE} WHERE name = '{AUTHZ}') = %s"
    params = [state.authz]
    if limits:
        sql += f" AND (SELECT version FROM {STATE_TABLE} WHERE name = '{LIMITS}') = %s"
        params.append(state.limits)
    return sql, params
