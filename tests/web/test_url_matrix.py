"""Every dashboard URL and every persona, GET and POST: who is let in and who is refused.

Personas: anonymous; carol, a plain user; olga, lead of team ops (a lead, but of another team);
alice, lead of team web; audrey, the auditor; ada, the admin. The table below names, for every URL,
who may GET it and who may POST to it; a test fails when a URL is added without a row here.

"Let in" means the view ran for that person (2xx, a redirect that is not to sign-in, or a 400/409
about the input: an empty POST is usually invalid). "Refused" means 403 or 404, and a refused
response shows none of the world's private data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts import services
from accounts.models import AuthHold, Backup, BackupState, Grant, PersonalAccessToken, Repository, Robot, User
from accounts.services import ensure_keys
from audit import exporting, tasks
from audit.context import AuditContext
from audit.filters import AuditFilter
from audit.models import AuditRecord, Kind
from audit.services import record
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db

PERSONAS = ("anonymous", "carol", "olga", "alice", "audrey", "ada")
SIGNED_IN = frozenset(PERSONAS) - {"anonymous"}
OVERSEERS = frozenset({"audrey", "ada"})
ADMINS = frozenset({"ada"})
WEB_READERS = frozenset({"alice", "audrey", "ada"})  # web's lead, the auditor, the admin (bob is web's member)
WEB_LEADS = frozenset({"alice", "ada"})
NOBODY: frozenset[str] = frozenset()
# What no refused page may show: bob's email, a grant pattern only web's people know, the ops robot.
PRIVATE = ("bob@private.example", "web/secret-app", "robot$ops+deploy", "bob-laptop")
# URLs that are not dashboard pages: the registry's token endpoint and notifications, health, sign-in.
NOT_PAGES = {"healthz", "metrics", "token", "registry_events", "accounts:login", "accounts:logout"}
API = "api:"  # the JSON API has its own table: tests/api/test_api_matrix.py


@dataclass(frozen=True)
class Row:
    kwargs: Callable[[dict], dict[str, object]]
    get: frozenset[str] | None  # who may GET (None: GET is not a method of this URL)
    post: frozenset[str] | None  # who may POST


def none(world: dict) -> dict[str, object]:
    return {}


def pk(key: str) -> Callable[[dict], dict[str, object]]:
    return lambda world: {"pk": world[key].pk}


TABLE: dict[str, Row] = {
    "accounts:home": Row(none, SIGNED_IN, None),
    "accounts:my_access": Row(none, SIGNED_IN, None),
    "accounts:lift_hold": Row(pk("hold"), None, ADMINS),
    "tokens:list": Row(none, SIGNED_IN, None),
    "tokens:new": Row(none, None, SIGNED_IN),
    "tokens:revoke": Row(pk("bob_token"), None, ADMINS),  # bob's own token: bob or an admin, nobody else
    "setup:index": Row(none, SIGNED_IN, None),
    "teams:list": Row(none, SIGNED_IN, None),
    "teams:new": Row(none, ADMINS, ADMINS),
    "teams:detail": Row(lambda w: {"name": "web"}, WEB_READERS, None),
    "teams:edit": Row(lambda w: {"name": "web"}, None, ADMINS),
    "teams:delete": Row(lambda w: {"name": "web"}, None, ADMINS),
    "teams:add_member": Row(lambda w: {"name": "web"}, None, WEB_LEADS),
    "teams:remove_member": Row(lambda w: {"name": "web", "username": "bob"}, None, WEB_LEADS),
    "teams:add_grant": Row(lambda w: {"name": "web"}, None, WEB_LEADS),
    "teams:revoke_grant": Row(lambda w: {"name": "web", "grant_id": w["managed"].pk}, None, WEB_LEADS),
    "teams:grant_expiry": Row(lambda w: {"name": "web", "grant_id": w["managed"].pk}, None, WEB_LEADS),
    "teams:add_robot": Row(lambda w: {"name": "web"}, None, WEB_LEADS),
    "teams:revoke_robot": Row(lambda w: {"name": "web", "pk": w["web_robot"].pk}, None, WEB_LEADS),
    # Directory group mappings: admins only, never the team's leads (LDAP is off here: ada gets a 409).
    "teams:add_directory_group": Row(lambda w: {"name": "web"}, None, ADMINS),
    "teams:remove_directory_group": Row(lambda w: {"name": "web", "pk": w["mapping"].pk}, None, ADMINS),
    "access:who": Row(none, OVERSEERS, None),
    "access:why": Row(none, SIGNED_IN, None),  # everyone asks about themselves; overseers about anyone
    "access:user": Row(lambda w: {"username": "bob"}, OVERSEERS, None),
    "access:robot": Row(lambda w: {"login": "robot$ops+deploy"}, OVERSEERS, None),
    "audit:search": Row(none, OVERSEERS, None),
    "audit:record": Row(pk("record"), OVERSEERS, None),
    "audit:export_csv": Row(none, OVERSEERS, None),
    "audit:export_jsonl": Row(none, OVERSEERS, None),
    "audit:exports": Row(none, OVERSEERS, OVERSEERS),  # an export job is a read, recorded like one
    "audit:export": Row(pk("export"), OVERSEERS, None),
    "audit:export_file": Row(pk("export"), OVERSEERS, None),
    "users:list": Row(none, OVERSEERS, None),
    "users:new": Row(none, ADMINS, ADMINS),
    "users:detail": Row(lambda w: {"username": "bob"}, OVERSEERS, None),
    "users:edit": Row(lambda w: {"username": "bob"}, None, ADMINS),
    "users:password": Row(lambda w: {"username": "bob"}, None, ADMINS),
    "users:active": Row(lambda w: {"username": "bob"}, None, ADMINS),
    "users:revoke_refresh": Row(lambda w: {"username": "bob"}, None, ADMINS),
    "grants:list": Row(none, OVERSEERS, None),
    "grants:new": Row(none, ADMINS, ADMINS),
    "grants:edit": Row(pk("managed"), None, ADMINS),
    "grants:revoke": Row(pk("managed"), None, ADMINS),
    "robots:list": Row(none, OVERSEERS, None),
    "robots:new": Row(none, ADMINS, ADMINS),
    "robots:revoke": Row(pk("ops_robot"), None, frozenset({"olga", "ada"})),  # ops's lead or an admin
    "robots:rotate": Row(pk("ops_robot"), None, frozenset({"olga", "ada"})),
    "repositories:list": Row(none, OVERSEERS, None),
    "repositories:new": Row(none, ADMINS, ADMINS),
    "repositories:detail": Row(pk("repository"), OVERSEERS, None),
    "repositories:access": Row(pk("repository"), OVERSEERS, None),
    "repositories:public": Row(pk("repository"), None, ADMINS),
    "repositories:delete": Row(pk("repository"), None, ADMINS),
    "registries:list": Row(none, OVERSEERS, None),
    "registries:new": Row(none, ADMINS, ADMINS),
    "registries:detail": Row(lambda w: {"service": "registry"}, OVERSEERS, None),
    "registries:edit": Row(lambda w: {"service": "registry"}, None, ADMINS),
    "registries:prepare": Row(lambda w: {"service": "registry"}, None, ADMINS),
    "registries:rotate_secret": Row(lambda w: {"service": "registry"}, None, ADMINS),
    "registries:bundle": Row(lambda w: {"service": "registry"}, OVERSEERS, None),
    "registries:doctor": Row(lambda w: {"service": "registry"}, OVERSEERS, ADMINS),  # no URL here: ada gets a 409
    "keys:list": Row(none, OVERSEERS, None),
    "keys:rotate": Row(none, None, ADMINS),
    "jobs:list": Row(none, OVERSEERS, None),
    "jobs:run": Row(lambda w: {"name": "seal-audit"}, None, ADMINS),
    # Backups hold every password hash and the private signing keys: admins only, not auditors.
    "backups:list": Row(none, ADMINS, None),
    "backups:run": Row(none, None, ADMINS),
    "backups:progress": Row(pk("backup"), ADMINS, None),
    "backups:download": Row(pk("backup"), ADMINS, None),
    # Access reviews: the list is everyone's (filtered to what concerns them), the checklist is for leads
    # and overseers, only admins start one, a team's items are answered by its leads and admins.
    "reviews:list": Row(none, SIGNED_IN, None),
    "reviews:start": Row(none, None, ADMINS),
    "reviews:detail": Row(pk("campaign"), WEB_READERS | {"olga"}, None),
    "reviews:export": Row(pk("campaign"), OVERSEERS, None),
    "reviews:certify": Row(lambda w: {"pk": w["campaign"].pk, "item": w["review_item"].pk}, None, WEB_LEADS),
    "reviews:revoke": Row(lambda w: {"pk": w["campaign"].pk, "item": w["review_item"].pk}, None, WEB_LEADS),
    # Unused rights: overseers read it all, each lead their teams' part; admins and leads act on it.
    # Suggestions while typing a person or a team: leads (usernames only) and overseers.
    "suggest:users": Row(none, frozenset({"olga", "alice", "audrey", "ada"}), None),
    "suggest:teams": Row(none, frozenset({"olga", "alice", "audrey", "ada"}), None),
    "users:add_to_team": Row(lambda w: {"username": "bob"}, None, ADMINS),
    "access:unused": Row(none, frozenset({"olga", "alice", "audrey", "ada"}), None),
    "access:unused_apply": Row(none, None, frozenset({"olga", "alice", "ada"})),
    "access:unused_dismiss": Row(none, None, frozenset({"olga", "alice", "ada"})),
}


def _names(patterns: list, namespace: str = "") -> Iterator[str]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            if entry.namespace != "admin":
                yield from _names(entry.url_patterns, entry.namespace or namespace)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}:{entry.name}" if namespace else entry.name


def test_every_dashboard_url_has_a_row_in_the_table() -> None:
    names = {name for name in _names(get_resolver().url_patterns) if not name.startswith(API)} - NOT_PAGES
    assert names - TABLE.keys() == set(), "add these URLs to TABLE"
    assert TABLE.keys() - names == set(), "these rows name URLs that no longer exist"


@pytest.fixture
def world(db: None, settings: Any, tmp_path: Path) -> dict[str, object]:
    people = {
        "ada": make_user("ada", is_superuser=True),
        "audrey": make_user("audrey", is_auditor=True),
        "alice": make_user("alice"),
        "bob": make_user("bob", email="bob@private.example"),
        "carol": make_user("carol"),
        "olga": make_user("olga"),
    }
    web = services.create_team("web", context=SYSTEM)
    ops = services.create_team("ops", context=SYSTEM)
    services.set_membership(web, people["alice"], "maintainer", context=SYSTEM)
    services.set_membership(web, people["bob"], "member", context=SYSTEM)
    services.set_membership(ops, people["olga"], "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(ops, "ops/**", "admin", context=SYSTEM)
    services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    export = tasks.start_export(AuditFilter(user="bob"), "csv", SYSTEM)
    exporting.run(export.pk)
    for _ in range(settings.AUTH_FAIL_LIMIT_USER):  # bob mistypes until he is held back
        services.limits.failed("bob", "192.0.2.7")
    scope = {"type": "repository", "name": "web/secret-app", "requested": ["push"], "granted": [], "denied": ["push"]}
    found = {
        **people,
        "managed": services.create_grant(people["bob"], "web/secret-app", "read", managed_by=web, context=SYSTEM),
        "web_robot": services.create_robot(web, "ci", context=SYSTEM)[0],
        "ops_robot": services.create_robot(ops, "deploy", context=SYSTEM)[0],
        "bob_token": services.create_access_token(people["bob"], "bob-laptop", context=SYSTEM)[0],
        "repository": services.create_repository("web/app", context=SYSTEM),
        "record": record(
            Kind.ACCESS, "denied", AuditContext(actor="bob"), repository="web/secret-app", actions=[scope]
        ),
        "export": export,
        "hold": AuthHold.objects.get(username="bob"),
        "backup": _backup_file(settings, tmp_path / "backups"),
        "mapping": services.directory.set_directory_groups(
            web, [("cn=web-devs,ou=groups,dc=example,dc=org", "member")], context=SYSTEM
        )[0],
    }
    found["campaign"] = services.reviews.start_campaign("Q2", context=SYSTEM).campaign
    found["review_item"] = found["campaign"].items.get(grant=found["managed"])  # web manages it
    return found


def _backup_file(settings: Any, directory: Path) -> Backup:
    """A verified backup whose file is in BACKUP_DIR (a download needs the file)."""
    settings.BACKUP_DIR = directory
    directory.mkdir()
    path = directory / "registryadmin-backup-20260101T014000Z.tar.gz.age"
    path.write_bytes(b"age-encryption.org/v1")
    return Backup.objects.create(state=BackupState.VERIFIED, path=str(path), size=21, sha256="0" * 64)


def _client(persona: str, world: dict) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world[persona])
    return client


def _let_in(response: object) -> bool:
    if response.status_code in (403, 404, 405):
        return False
    return not (response.status_code == 302 and response["Location"].startswith("/login/"))


CASES = [
    (name, method, persona)
    for name, row in TABLE.items()
    for method, allowed in (("GET", row.get), ("POST", row.post))
    for persona in PERSONAS
]


@pytest.mark.parametrize(("name", "method", "persona"), CASES)
def test_each_persona_is_let_in_or_refused(world: dict, name: str, method: str, persona: str) -> None:
    row = TABLE[name]
    allowed = row.get if method == "GET" else row.post
    url = reverse(name, kwargs=row.kwargs(world))
    client = _client(persona, world)
    response = client.get(url) if method == "GET" else client.post(url)
    body = b"" if response.streaming else response.content
    if allowed is None:
        assert response.status_code == 405 or (persona == "anonymous" and not _let_in(response)), response.status_code
    elif persona == "anonymous":
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    elif persona in allowed:
        assert _let_in(response), f"{persona} was refused {method} {url}: {response.status_code}"
        assert response.status_code < 500
    else:
        assert response.status_code in (403, 404), f"{persona} got {response.status_code} for {method} {url}"
        assert not any(secret.encode() in body for secret in PRIVATE), f"{method} {url} leaked to {persona}"


@pytest.mark.parametrize("persona", ["carol", "olga"])
def test_plain_users_and_other_leads_see_nothing_private_on_their_own_pages(world: dict, persona: str) -> None:
    client = _client(persona, world)
    for name in ("accounts:home", "accounts:my_access", "tokens:list", "setup:index", "teams:list", "access:why"):
        body = client.get(reverse(name)).content.decode()
        assert not any(secret in body for secret in PRIVATE), f"{name} shows {persona} someone else's data"


def test_a_refused_change_changes_nothing(world: dict) -> None:
    """Spot checks behind the matrix: the refused POSTs above left the world as it was."""
    for persona in ("carol", "olga", "audrey"):
        client = _client(persona, world)
        client.post(reverse("grants:revoke", kwargs={"pk": world["managed"].pk}))
        client.post(reverse("robots:revoke", kwargs={"pk": world["web_robot"].pk}))
        client.post(reverse("tokens:revoke", kwargs={"pk": world["bob_token"].pk}))
        client.post(reverse("users:edit", kwargs={"username": "bob"}), {"is_superuser": "on", "is_active": "on"})
        client.post(reverse("repositories:public", kwargs={"pk": world["repository"].pk}), {"public": "1"})
    assert Grant.objects.filter(pk=world["managed"].pk).exists()
    assert Robot.objects.get(pk=world["web_robot"].pk).revoked_at is None
    assert PersonalAccessToken.objects.get(pk=world["bob_token"].pk).revoked_at is None
    assert not User.objects.get(username="bob").is_superuser
    assert not Repository.objects.get(pk=world["repository"].pk).public
    assert not AuditRecord.objects.filter(actor__in=["carol", "olga", "audrey"], kind=Kind.ADMIN_CHANGE).exists()
