"""Directory users against a real slapd: sign-in (web and token endpoint), the bind cache, groups to
teams, the sync (dry run, removal, deactivation), outages and timeouts, nested groups.

Each test starts its own slapd (tests/harness/slapd.py) and configures the app for it through the real
settings module (tests/directory.py).
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from io import StringIO
from pathlib import Path

import ldap
import pytest
import redis
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django.urls import reverse

from accounts import services
from accounts.models import Membership, Registry, Team, User
from accounts.services import ensure_keys
from audit.models import AuditRecord, Kind
from registryadmin.env import cache_config
from tests.conftest import PASSWORD, SYSTEM, ask_registry, granted, make_user
from tests.directory import directory
from tests.harness import tls
from tests.harness.slapd import Slapd, require_slapd
from tests.harness.slapd import slapd as slapd  # the fixture

pytestmark = pytest.mark.django_db
DORA_PW = "dora-directory-pw-1"
PUSH = "repository:web/app:pull,push"


@pytest.fixture
def registry(db: None) -> Registry:
    registry = services.create_registry("registry", context=SYSTEM)
    ensure_keys()
    return registry


@pytest.fixture
def people(slapd: Slapd) -> Slapd:
    slapd.add_person("dora", DORA_PW, mail="dora@example.org", given_name="Dora", sn="Explorer")
    slapd.add_person("eve", "eve-directory-pw-1", mail="eve@example.org")
    slapd.add_group("web-devs", ["dora"])
    slapd.add_group("ops", ["eve"])
    return slapd


@pytest.fixture
def web(db: None, people: Slapd) -> Iterator[Team]:
    with directory(people):
        team = services.create_team("web", context=SYSTEM)
        services.directory.set_directory_groups(team, [(people.group_dn("web-devs"), "member")], context=SYSTEM)
        services.create_grant(team, "web/*", "write", context=SYSTEM)
        yield team


def sign_in(username: str, password: str) -> tuple[Client, object]:
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": username, "password": password})
    return client, response


def last_access() -> AuditRecord:
    return AuditRecord.objects.filter(kind=Kind.ACCESS).latest("id")


def sync(*args: str) -> str:
    out = StringIO()
    call_command("sync_ldap", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


# --- sign-in ------------------------------------------------------------------------------------


def test_web_sign_in_creates_a_directory_managed_user_with_the_directory_profile(web: Team, people: Slapd) -> None:
    client, response = sign_in("Dora", DORA_PW)  # any case: stored in lower case
    assert response.status_code == 302, response.content.decode()[:500]
    dora = User.objects.get(username="dora")
    assert dora.directory_dn.lower() == people.person_dn("dora").lower() and dora.from_directory
    assert (dora.email, dora.first_name, dora.last_name) == ("dora@example.org", "Dora", "Explorer")
    assert not dora.has_usable_password()
    assert client.get(reverse("accounts:home")).status_code == 200
    created = AuditRecord.objects.get(kind=Kind.ADMIN_CHANGE, detail__action="user.create", detail__target="dora")
    assert created.actor == services.directory.SYNC_ACTOR
    assert Membership.objects.get(team=web, user=dora).role == "member"
    assert AuditRecord.objects.filter(kind=Kind.SIGNIN, outcome="success", actor="dora").exists()


def test_a_wrong_password_is_refused_on_the_web_and_at_the_token_endpoint_right_after_a_good_one(
    web: Team, people: Slapd, registry: Registry
) -> None:
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 200
    assert ask_registry("dora", DORA_PW + "x", PUSH).status_code == 401
    assert ask_registry("dora", "", PUSH).status_code == 401
    assert last_access().outcome == "auth_failed"
    _, response = sign_in("dora", "not-her-password")
    assert response.status_code == 200 and "Please enter a correct username and password" in response.content.decode()
    assert AuditRecord.objects.filter(kind=Kind.SIGNIN, outcome="failure", actor="dora").exists()
    # Nor does a person who is not in the directory at all get anywhere.
    assert ask_registry("nobody", "whatever", PUSH).status_code == 401
    assert not User.objects.filter(username="nobody").exists()


def test_the_directory_profile_is_copied_again_at_each_fresh_sign_in(web: Team, people: Slapd) -> None:
    sign_in("dora", DORA_PW)
    people.modify_person("dora", mail="dora@new.example.org")
    with directory(people, LDAP_BIND_CACHE_TTL="0"):
        sign_in("dora", DORA_PW)
    assert User.objects.get(username="dora").email == "dora@new.example.org"
    change = AuditRecord.objects.filter(
        kind=Kind.ADMIN_CHANGE, detail__action="user.update", detail__target="dora"
    ).latest("id")
    assert change.actor == services.directory.SYNC_ACTOR
    assert change.detail["after"] == {"email": "dora@new.example.org"}


# --- the token endpoint, groups to teams, the sync ----------------------------------------------------


def test_a_group_derived_team_grant_pushes_and_leaving_the_group_refuses_after_the_next_sync(
    web: Team, people: Slapd, registry: Registry
) -> None:
    response = ask_registry("dora", DORA_PW, PUSH)
    assert response.status_code == 200
    assert sorted(granted(response)["web/app"]) == ["pull", "push"]
    membership = Membership.objects.get(team=web, user__username="dora")
    assert membership.local_role == "" and [g.dn for g in membership.directory_groups.all()] == [
        people.group_dn("web-devs").lower()
    ]
    people.remove_member("web-devs", "dora")
    out = sync()
    assert f"- dora web (left {people.group_dn('web-devs').lower()})" in out
    assert not Membership.objects.filter(team=web, user__username="dora").exists()
    # The password is still remembered, but the membership is gone: nothing granted.
    response = ask_registry("dora", DORA_PW, PUSH)
    assert response.status_code == 200 and granted(response) == {"web/app": []}
    assert last_access().outcome == "denied"
    removed = AuditRecord.objects.get(
        kind=Kind.ADMIN_CHANGE, detail__action="membership.remove", detail__target="dora in web"
    )
    assert removed.actor == services.directory.SYNC_ACTOR


def test_leaving_a_group_removes_only_that_source_and_the_local_role_stays(
    web: Team, people: Slapd, registry: Registry
) -> None:
    people.add_group("web-leads", ["dora"])
    services.directory.set_directory_groups(
        web, [(people.group_dn("web-devs"), "member"), (people.group_dn("web-leads"), "maintainer")], context=SYSTEM
    )
    sign_in("dora", DORA_PW)
    dora = User.objects.get(username="dora")
    assert Membership.objects.get(team=web, user=dora).role == "maintainer"
    services.set_membership(web, dora, "member", context=SYSTEM)  # a local source too
    people.remove_member("web-leads", "dora")
    sync()
    membership = Membership.objects.get(team=web, user=dora)
    assert (membership.role, membership.local_role) == ("member", "member")
    people.remove_member("web-devs", "dora")
    sync()
    membership = Membership.objects.get(team=web, user=dora)  # the local membership is never touched
    assert (membership.role, membership.local_role, membership.directory_groups.count()) == ("member", "member", 0)


def test_the_dry_run_prints_each_change_and_changes_nothing(web: Team, people: Slapd) -> None:
    people.add_person("finn", "finn-pw-12345", mail="finn@example.org")
    people.add_member("web-devs", "finn")
    changes_before = AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE).count()
    out = sync("--dry-run")
    group = people.group_dn("web-devs").lower()
    assert f"+ dora web (member, from {group})" in out
    assert f"+ finn web (member, from {group})" in out
    assert "+ finn (new directory user" in out
    assert "dry run, nothing was changed" in out
    assert not User.objects.filter(username__in=["dora", "finn"]).exists()
    assert not Membership.objects.filter(team=web).exists()
    assert AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE).count() == changes_before
    assert not AuditRecord.objects.filter(kind=Kind.JOB, detail__job="sync_ldap").exists()
    # The real run makes exactly those changes, each audited, and records the job with its diff.
    real = sync()
    for line in out.splitlines()[:-1]:
        assert line in real
    assert set(Membership.objects.filter(team=web).values_list("user__username", flat=True)) == {"dora", "finn"}
    job = AuditRecord.objects.get(kind=Kind.JOB, detail__job="sync_ldap")
    assert job.outcome == "success" and f"+ finn web (member, from {group})" in job.detail["result"]["diff"]
    assert job.detail["result"]["counts"]["+"] >= 4
    assert (
        AuditRecord.objects.filter(
            kind=Kind.ADMIN_CHANGE, actor=services.directory.SYNC_ACTOR, detail__action="membership.add"
        ).count()
        == 2
    )
    assert "changed 0" in sync()  # and a second run has nothing left to do


def test_a_person_deleted_from_the_directory_is_deactivated_by_the_sync_and_refused(
    web: Team, people: Slapd, registry: Registry
) -> None:
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 200
    people.delete_person("dora")
    out = sync()
    assert "- dora (deactivated: no longer in the directory)" in out
    dora = User.objects.get(username="dora")
    assert not dora.is_active and dora.directory_missing_since is not None
    # The remembered bind went with the deactivation: no token, and the attempt is recorded.
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 401
    assert last_access().outcome == "auth_failed"
    _, response = sign_in("dora", DORA_PW)
    assert response.status_code == 200 and not response.wsgi_request.user.is_authenticated
    # Back in the directory: the next sync reactivates the account.
    people.add_person("dora", DORA_PW, mail="dora@example.org", given_name="Dora", sn="Explorer")
    if people.person_dn("dora") not in people.members("web-devs"):
        people.add_member("web-devs", "dora")
    assert "+ dora (reactivated: back in the directory)" in sync()
    assert User.objects.get(username="dora").is_active
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 200


def test_with_deactivate_missing_off_a_vanished_person_keeps_the_account_but_loses_the_memberships(
    web: Team, people: Slapd
) -> None:
    sign_in("dora", DORA_PW)
    people.delete_person("dora")
    with directory(people, LDAP_DEACTIVATE_MISSING="false"):
        sync()
    assert User.objects.get(username="dora").is_active
    assert not Membership.objects.filter(team=web, user__username="dora").exists()


def test_the_sync_refuses_when_the_directory_returns_nobody_but_directory_users_exist(web: Team, people: Slapd) -> None:
    sign_in("dora", DORA_PW)
    nobody = "(&(uid=%(user)s)(description=nobody-has-this))"
    with directory(people, LDAP_USER_FILTER=nobody), pytest.raises(CommandError, match="refusing to deactivate 1"):
        sync()
    assert User.objects.get(username="dora").is_active


def test_the_sync_creates_members_of_mapped_groups_and_pages_large_directories(
    slapd: Slapd, monkeypatch: pytest.MonkeyPatch
) -> None:
    population = slapd.populate(people=250, groups=10, password="bulk-pw-123")
    monkeypatch.setattr(services.directory_sync, "PAGE_SIZE", 100)
    with directory(slapd):
        teams = [services.create_team(f"team{i}", context=SYSTEM) for i in range(3)]
        for index, team in enumerate(teams):
            group = slapd.group_dn(f"group{index:04d}")
            services.directory.set_directory_groups(team, [(group, "member")], context=SYSTEM)
        progress: list[str] = []
        report = services.directory_sync.sync_all(progress=progress.append)
    assert report.people == 250 and report.groups == 3 and not report.errors
    assert "people: 250 read" in progress
    for index, team in enumerate(teams):
        expected = set(population.groups[f"group{index:04d}"])
        assert set(Membership.objects.filter(team=team).values_list("user__username", flat=True)) == expected
    # Only members of mapped groups get an account.
    assert User.objects.exclude(directory_dn="").count() == sum(
        len(population.groups[f"group{i:04d}"]) for i in range(3)
    )


def test_a_mapped_group_missing_from_the_directory_is_an_error_in_the_report(web: Team, people: Slapd) -> None:
    services.directory.set_directory_groups(
        web, [(people.group_dn("web-devs"), "member"), (people.group_dn("gone"), "member")], context=SYSTEM
    )
    report = services.directory_sync.sync_all()
    assert any("cn=gone" in error and "not in the directory" in error for error in report.errors)
    assert Membership.objects.filter(team=web, user__username="dora").exists()


# --- group types -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["groupOfNames", "groupOfUniqueNames", "posixGroup"])
def test_each_group_type_maps_its_members_at_sign_in_and_in_the_sync(slapd: Slapd, kind: str) -> None:
    slapd.add_person("gil", "gil-pw-123456")
    slapd.add_person("hal", "hal-pw-123456")
    slapd.add_group("devs", ["gil", "hal"], kind=kind)  # type: ignore[arg-type]
    with directory(slapd, LDAP_GROUP_TYPE=kind):
        team = services.create_team("devs", context=SYSTEM)
        services.directory.set_directory_groups(team, [(slapd.group_dn("devs"), "maintainer")], context=SYSTEM)
        assert sign_in("gil", "gil-pw-123456")[1].status_code == 302
        assert Membership.objects.get(team=team, user__username="gil").role == "maintainer"
        services.directory_sync.sync_all()
        assert set(Membership.objects.filter(team=team).values_list("user__username", flat=True)) == {"gil", "hal"}
        slapd.remove_member("devs", "hal")
        services.directory_sync.sync_all()
        assert set(Membership.objects.filter(team=team).values_list("user__username", flat=True)) == {"gil"}


def test_active_directory_type_follows_nested_groups_and_the_plain_type_does_not(slapd: Slapd) -> None:
    slapd.add_person("ines", "ines-pw-12345")
    slapd.add_group("frontend", ["ines"])
    slapd.add_group("engineering", [slapd.group_dn("frontend")])  # a group inside a group
    with directory(slapd, LDAP_GROUP_TYPE="activeDirectory"):
        team = services.create_team("eng", context=SYSTEM)
        services.directory.set_directory_groups(team, [(slapd.group_dn("engineering"), "member")], context=SYSTEM)
        assert sign_in("ines", "ines-pw-12345")[1].status_code == 302
        assert Membership.objects.filter(team=team, user__username="ines").exists()
        services.directory_sync.sync_all()
        assert Membership.objects.filter(team=team, user__username="ines").exists()
    with directory(slapd, LDAP_GROUP_TYPE="groupOfNames", LDAP_BIND_CACHE_TTL="0"):
        services.directory_sync.sync_all()
        assert not Membership.objects.filter(team=team, user__username="ines").exists()


def test_admin_and_auditor_groups_give_and_take_back_only_the_flags_they_gave(slapd: Slapd) -> None:
    slapd.add_person("jo", "jo-pw-1234567")
    slapd.add_group("registry-admins", ["jo"])
    slapd.add_group("auditors", ["jo"])
    with directory(
        slapd, LDAP_ADMIN_GROUP=slapd.group_dn("registry-admins"), LDAP_AUDITOR_GROUP=slapd.group_dn("auditors")
    ):
        sign_in("jo", "jo-pw-1234567")
        jo = User.objects.get(username="jo")
        assert jo.is_superuser and jo.is_auditor
        slapd.remove_member("registry-admins", "jo")
        out = sync()
        jo.refresh_from_db()
        assert not jo.is_superuser and jo.is_auditor
        assert f"- jo admin (left {slapd.group_dn('registry-admins').lower()})" in out


# --- which side handles a name -------------------------------------------------------------------------


def test_a_local_account_stays_local_and_a_name_differing_only_in_case_is_refused(
    slapd: Slapd, registry: Registry
) -> None:
    make_user("kim")  # local, with PASSWORD
    slapd.add_person("kim", "kims-directory-password")
    with directory(slapd):
        assert ask_registry("kim", PASSWORD).status_code == 200
        assert ask_registry("kim", "kims-directory-password").status_code == 401
        assert ask_registry("KIM", "kims-directory-password").status_code == 401
        assert sign_in("KIM", "kims-directory-password")[1].status_code == 200
    assert list(User.objects.filter(username__iexact="kim").values_list("username", flat=True)) == ["kim"]
    assert User.objects.get(username="kim").directory_dn == ""
    # A sync never takes the local account over either.
    slapd.add_group("kims", ["kim"])
    with directory(slapd):
        team = services.create_team("kims", context=SYSTEM)
        services.directory.set_directory_groups(team, [(slapd.group_dn("kims"), "member")], context=SYSTEM)
        report = services.directory_sync.sync_all()
    assert any("kim" in error and "stays local" in error for error in report.errors)
    assert not Membership.objects.filter(team=team).exists()


def test_with_ldap_off_the_directory_is_never_asked(slapd: Slapd, registry: Registry) -> None:
    slapd.add_person("lee", "lee-pw-1234567")
    assert ask_registry("lee", "lee-pw-1234567").status_code == 401
    with pytest.raises(CommandError, match="LDAP is off"):
        sync()


# --- the bind cache, outages and timeouts -----------------------------------------------------------------


def test_the_bind_cache_answers_while_the_directory_is_down_but_never_for_another_password(
    web: Team, people: Slapd, registry: Registry
) -> None:
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 200
    people.stop()
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 200  # remembered: no directory round trip
    response = ask_registry("dora", "a-guess", PUSH)
    assert response.status_code == 503  # a guess is never let in: it needs the directory
    # Deactivation drops the remembered bind at once.
    dora = User.objects.get(username="dora")
    services.update_user(dora, is_active=False, context=SYSTEM)
    services.update_user(dora, is_active=True, context=SYSTEM)
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 503


def test_with_the_cache_off_every_request_binds(web: Team, people: Slapd, registry: Registry) -> None:
    with directory(people, LDAP_BIND_CACHE_TTL="0"):
        assert ask_registry("dora", DORA_PW, PUSH).status_code == 200
        people.stop()
        assert ask_registry("dora", DORA_PW, PUSH).status_code == 503


def test_directory_down_gives_clear_refusals_and_local_users_are_unaffected(
    web: Team, people: Slapd, registry: Registry
) -> None:
    admin = make_user("root-admin", is_superuser=True)
    people.stop()
    response = ask_registry("eve", "eve-directory-pw-1", PUSH)
    assert response.status_code == 503
    assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert response["Retry-After"] == str(services.directory.RETRY_AFTER)
    record = last_access()
    assert record.outcome == "auth_failed" and record.actor == "eve"
    assert "cannot reach the directory" in str(record.detail)
    assert not AuditRecord.objects.filter(kind=Kind.ACCESS, outcome="limited").exists()
    # The web form says so too, with a 503, and it is recorded.
    _, page = sign_in("eve", "eve-directory-pw-1")
    assert page.status_code == 503 and "The directory cannot be reached" in page.content.decode()
    failure = AuditRecord.objects.filter(kind=Kind.SIGNIN, outcome="failure", actor="eve").latest("id")
    assert failure.detail["reason"] == "directory_unavailable"
    # Local accounts still get tokens and sign in.
    assert ask_registry(admin.username, PASSWORD, PUSH).status_code == 200
    assert sign_in(admin.username, PASSWORD)[1].status_code == 302
    # The sync refuses and changes nothing.
    with pytest.raises(CommandError, match="cannot reach the directory"):
        sync()
    # Back up: eve signs in.
    people.start()
    assert ask_registry("eve", "eve-directory-pw-1", PUSH).status_code == 200


class SilentServer:
    """Accepts TCP connections on loopback and never answers: a directory that drops packets."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self) -> None:
        self.sock.close()
        for connection in self.held:
            connection.close()


def test_a_directory_that_never_answers_times_out_with_a_503_and_never_hangs(slapd: Slapd, registry: Registry) -> None:
    silent = SilentServer()
    try:
        with directory(slapd, LDAP_SERVER_URI=f"ldap://127.0.0.1:{silent.port}", LDAP_TIMEOUT="1"):
            started = time.monotonic()
            response = ask_registry("dora", DORA_PW, PUSH)
            elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert response.status_code == 503
    assert "LDAP_TIMEOUT=1s" in str(last_access().detail) or "cannot reach" in str(last_access().detail)
    assert elapsed < 20, f"the token request took {elapsed:.1f} s with LDAP_TIMEOUT=1"


def test_the_jobs_page_shows_the_sync_schedule_its_last_diff_and_errors_with_a_run_now_button(
    web: Team, people: Slapd
) -> None:
    services.directory.set_directory_groups(
        web, [(people.group_dn("web-devs"), "member"), (people.group_dn("gone"), "member")], context=SYSTEM
    )
    sync()
    client = Client()
    client.force_login(make_user("root", is_superuser=True))
    page = client.get(reverse("jobs:list")).content.decode()
    assert "sync-ldap" in page and "accounts.tasks.sync_ldap" in page and "hourly at minute 0" in page
    assert reverse("jobs:run", kwargs={"name": "sync-ldap"}) in page
    assert "+ dora web (member, from cn=web-devs,ou=groups,dc=example,dc=org)" in page
    assert "errors (1)" in page and "cn=gone,ou=groups,dc=example,dc=org is not in the directory" in page


@pytest.fixture
def redis_cache() -> Iterator[str]:
    """The production cache (CACHE_URL=redis://...): the bind cache shared by every worker and host."""
    url = "redis://127.0.0.1:6379/8"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis at {url} is needed for this test: {exc}")
    config = cache_config(url)
    config["KEY_PREFIX"] = prefix = f"test-{uuid.uuid4().hex[:8]}"
    with override_settings(CACHES={"default": config}):
        caches["default"].clear()
        yield prefix
        caches["default"].clear()


def test_on_redis_the_remembered_bind_is_a_keyed_hash_that_expires_and_is_shared(
    web: Team, people: Slapd, registry: Registry, redis_cache: str
) -> None:
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 200
    client = redis.Redis.from_url("redis://127.0.0.1:6379/8")
    keys = [key.decode() for key in client.keys(f"{redis_cache}*ldap-bind:*")]
    assert len(keys) == 1
    assert "dora" not in keys[0] and DORA_PW not in keys[0]
    assert DORA_PW.encode() not in client.get(keys[0])
    assert 0 < client.ttl(keys[0]) <= 60
    # Another process (a fresh client on the same Redis) finds it: the directory is not asked.
    people.stop()
    caches["default"].close()
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 200
    client.delete(*keys)  # expired
    assert ask_registry("dora", DORA_PW, PUSH).status_code == 503


def test_two_workers_creating_the_same_new_directory_user_at_once_end_with_one_account(
    web: Team, people: Slapd, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = services.directory.DirectoryBackend.get_or_build_user
    raced: list[bool] = []

    def racing(self: services.directory.DirectoryBackend, username: str, ldap_user: object) -> tuple[User, bool]:
        if not raced:  # the other worker commits the account between our lookup and our save
            raced.append(True)
            user, built = original(self, username, ldap_user)
            User.objects.create(username=username, directory_dn=ldap_user.dn)  # type: ignore[attr-defined]
            return user, built
        return original(self, username, ldap_user)

    monkeypatch.setattr(services.directory.DirectoryBackend, "get_or_build_user", racing)
    response = ask_registry("dora", DORA_PW, PUSH)
    assert response.status_code == 200 and sorted(granted(response)["web/app"]) == ["pull", "push"]
    assert raced and User.objects.filter(username="dora").count() == 1


def test_with_ldap_on_a_group_mapping_needs_the_group_search_base(web: Team, people: Slapd) -> None:
    with directory(people, LDAP_GROUP_SEARCH_BASE=None):
        with pytest.raises(ValidationError, match="Set LDAP_GROUP_SEARCH_BASE"):
            services.directory.set_directory_groups(web, [(people.group_dn("ops"), "member")], context=SYSTEM)
        # Existing mappings then give nobody anything, at sign-in and in the sync alike.
        sign_in("dora", DORA_PW)
        assert not Membership.objects.filter(team=web).exists()
        report = services.directory_sync.sync_all()
    assert not Membership.objects.filter(team=web).exists()
    assert any("LDAP_GROUP_SEARCH_BASE is not set" in error for error in report.errors)


def test_start_tls_with_the_directory_ca_signs_in_and_an_untrusted_certificate_is_a_clear_503(
    tmp_path: Path, registry: Registry
) -> None:
    require_slapd()
    ca, cert, key = tls.issue(tmp_path / "tls")
    other_ca, _, _ = tls.issue(tmp_path / "other", ca_name="somebody else")
    with Slapd(tls=(cert, key)) as server:
        server.add_person("tess", "tess-pw-123456")
        with directory(server, LDAP_START_TLS="true", LDAP_CA_FILE=str(ca)):
            assert ask_registry("tess", "tess-pw-123456").status_code == 200
            assert services.directory_sync.sync_all().people == 1
        with directory(server, LDAP_START_TLS="true", LDAP_CA_FILE=str(other_ca), LDAP_BIND_CACHE_TTL="0"):
            response = ask_registry("tess", "tess-pw-123456")
            assert response.status_code == 503
            assert "TLS with the directory failed" in str(last_access().detail)
            with pytest.raises(services.directory_sync.SyncFailed, match="TLS with the directory failed"):
                services.directory_sync.sync_all()


# --- what the review found ----------------------------------------------------------------------------


def test_a_directory_value_django_refuses_never_blocks_deactivation_or_sign_in(
    web: Team, people: Slapd, registry: Registry
) -> None:
    people.add_person("zed", "zed-pw-1234567", mail="zed@corp", given_name="Z" * 300)
    people.add_member("web-devs", "zed")
    assert ask_registry("zed", "zed-pw-1234567", PUSH).status_code == 200
    zed = User.objects.get(username="zed")
    assert zed.email == "" and zed.first_name == "Z" * 150  # tidied on the way in
    User.objects.filter(pk=zed.pk).update(email="not an email")  # a row from before the rule
    people.delete_person("zed")
    report = services.directory_sync.sync_all()
    assert not report.errors, report.errors
    assert not User.objects.get(pk=zed.pk).is_active
    people.add_person("zed", "zed-pw-1234567", mail="zed@corp")
    assert ask_registry("zed", "zed-pw-1234567", PUSH).status_code == 200  # back, reactivated, never a 500


def test_posix_group_members_with_a_mixed_case_uid_stay_members_at_sign_in(slapd: Slapd) -> None:
    slapd.add_person("Pat", "pat-pw-1234567")
    slapd.add_group("devs", ["Pat"], kind="posixGroup")
    with directory(slapd, LDAP_GROUP_TYPE="posixGroup", LDAP_BIND_CACHE_TTL="0"):
        team = services.create_team("devs", context=SYSTEM)
        services.directory.set_directory_groups(team, [(slapd.group_dn("devs"), "member")], context=SYSTEM)
        services.directory_sync.sync_all()
        assert Membership.objects.filter(team=team, user__username="pat").exists()
        assert sign_in("pat", "pat-pw-1234567")[1].status_code == 302
        assert Membership.objects.filter(team=team, user__username="pat").exists()


def test_a_second_uid_signs_in_to_the_same_account_and_a_new_person_gets_the_syncs_name(
    slapd: Slapd, registry: Registry
) -> None:
    slapd.add_person("alice", "alice-pw-123456")
    slapd.admin.modify_s(slapd.person_dn("alice"), [(ldap.MOD_ADD, "uid", [b"asmith"])])
    with directory(slapd):
        assert ask_registry("asmith", "alice-pw-123456").status_code == 200  # first ever: the entry's first uid
        assert list(User.objects.values_list("username", flat=True)) == ["alice"]
        assert ask_registry("alice", "alice-pw-123456").status_code == 200
        assert ask_registry("asmith", "alice-pw-123456").status_code == 200
        report = services.directory_sync.sync_all()
    assert list(User.objects.values_list("username", "is_active")) == [("alice", True)]
    assert not report.lines and not report.errors


def test_surrounding_spaces_are_not_another_spelling_of_a_directory_name(
    web: Team, people: Slapd, registry: Registry
) -> None:
    for variant in (" dora", "dora\t", "dora "):
        assert ask_registry(variant, DORA_PW, PUSH).status_code == 401
    assert not User.objects.filter(username__startswith="dora").exists()


def test_a_local_account_may_not_be_created_beside_a_directory_user_in_another_case(web: Team, people: Slapd) -> None:
    sign_in("dora", DORA_PW)
    with pytest.raises(ValidationError, match="is a directory user"):
        services.create_user("Dora", context=SYSTEM)


def test_a_non_ascii_name_differing_only_in_case_from_a_local_account_is_refused(
    slapd: Slapd, registry: Registry
) -> None:
    make_user("Émile")
    slapd.add_person("émile", "emile-pw-123456")
    with directory(slapd):
        assert ask_registry("émile", "emile-pw-123456").status_code == 401
    assert list(User.objects.values_list("username", flat=True)) == ["Émile"]


class RangedDirectory:
    """Answers base searches on one group the way Active Directory does past 1,500 members."""

    def __init__(self, members: list[bytes], page: int) -> None:
        self.members, self.page, self.asked = members, page, []

    def search_st(self, dn: str, scope: int, filterstr: str, attrs: list[str], timeout: int) -> list:
        self.asked.append(attrs[0])
        start = int(attrs[0].split("=", 1)[1].split("-")[0]) if ";range=" in attrs[0] else 0
        chunk = self.members[start : start + self.page]
        end = "*" if start + self.page >= len(self.members) else str(start + self.page - 1)
        return [(dn, {f"member;range={start}-{end}": chunk})]


def test_active_directory_ranged_member_retrieval_is_followed_to_the_end(settings) -> None:
    settings.LDAP_GROUP_TYPE, settings.LDAP_GROUP_MEMBER_ATTR = "activeDirectory", "member"
    settings.LDAP_GROUP_FILTER, settings.LDAP_TIMEOUT = "(objectClass=*)", 2
    dns = [f"cn=u{i},ou=people,dc=example,dc=org" for i in range(3200)]
    directory_ = RangedDirectory([dn.encode() for dn in dns], page=1500)
    people = {f"u{i}": services.directory_sync.Person(dn=dn, username=f"u{i}") for i, dn in enumerate(dns)}
    by_dn = {dn: f"u{i}" for i, dn in enumerate(dns)}
    found = services.directory_sync._members(
        directory_, "cn=big,ou=groups,dc=example,dc=org", by_dn, people, [], seen=set()
    )
    assert len(found) == 3200
    assert directory_.asked == ["member", "member;range=1500-*", "member;range=3000-*"]
