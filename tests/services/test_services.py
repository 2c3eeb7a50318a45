"""Every service changes state and writes its audit record in the same transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts import services
from accounts.models import Grant, Membership, Registry, Repository, Team, User
from audit.context import AuditContext
from audit.models import AppendOnlyError, AuditRecord
from tests.conftest import SYSTEM, make_user

pytestmark = pytest.mark.django_db


def last_change() -> dict:
    record = AuditRecord.objects.filter(kind="admin_change").order_by("-id").first()
    assert record is not None
    return {"actor": record.actor, **record.detail}


def test_creating_a_user_is_audited_without_the_password() -> None:
    admin_ctx = AuditContext(actor="ada", actor_id=1, ip="192.0.2.1", user_agent="pytest", request_id="r1")
    services.create_user("erin", email="erin@example.org", password="a-long-secret-phrase", context=admin_ctx)
    record = AuditRecord.objects.get(kind="admin_change")
    assert record.detail["action"] == "user.create"
    assert record.actor == "ada" and record.actor_id == 1 and record.ip == "192.0.2.1"
    assert record.request_id == "r1"
    assert "a-long-secret-phrase" not in str(record.detail)
    assert User.objects.get(username="erin").check_password("a-long-secret-phrase")


def test_a_user_without_a_password_cannot_sign_in() -> None:
    user = services.create_user("frank", context=SYSTEM)
    assert not user.has_usable_password()


def test_weak_and_overlong_passwords_are_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError, match=r"too common|too short"):
        services.create_user("gina", password="password", context=SYSTEM)
    with pytest.raises(ValidationError, match="72 bytes"):
        services.create_user("gina", password="é" * 40, context=SYSTEM)
    assert not User.objects.filter(username="gina").exists()
    assert not AuditRecord.objects.exists()


def test_update_user_records_only_what_changed(carol: User) -> None:
    services.update_user(carol, is_auditor=True, email="carol@example.org", context=SYSTEM)
    change = last_change()
    assert change["action"] == "user.update"
    assert change["before"] == {"email": "", "is_auditor": False}
    assert change["after"] == {"email": "carol@example.org", "is_auditor": True}


def test_an_unchanged_update_writes_nothing(carol: User) -> None:
    before = AuditRecord.objects.count()
    services.update_user(carol, is_active=True, context=SYSTEM)
    assert AuditRecord.objects.count() == before


def test_set_password_is_audited_and_the_secret_never_logged(carol: User) -> None:
    services.set_password(carol, "new-passphrase-for-carol", context=SYSTEM)
    change = last_change()
    assert change["action"] == "user.set_password"
    assert "new-passphrase" not in str(AuditRecord.objects.values_list("detail", flat=True))
    carol.refresh_from_db()
    assert carol.check_password("new-passphrase-for-carol")


def test_deleting_a_user_keeps_the_audit_trail(carol: User) -> None:
    carol_id = carol.pk
    services.delete_user(carol, context=SYSTEM)
    assert AuditRecord.objects.filter(actor_id=None, detail__target="carol").exists()
    assert AuditRecord.objects.filter(detail__action="user.create", detail__target="carol").exists()
    assert not User.objects.filter(pk=carol_id).exists()


def test_memberships_are_added_changed_and_removed_with_records(web: Team, carol: User) -> None:
    services.set_membership(web, carol, "member", context=SYSTEM)
    assert last_change()["action"] == "membership.add"
    services.set_membership(web, carol, "maintainer", context=SYSTEM)
    assert last_change()["action"] == "membership.change"
    assert last_change()["after"] == {"role": "maintainer"}
    services.remove_membership(Membership.objects.get(team=web, user=carol), context=SYSTEM)
    assert last_change()["action"] == "membership.remove"


def test_unknown_team_role_is_refused(web: Team, carol: User) -> None:
    with pytest.raises(ValidationError, match="maintainer or member"):
        services.set_membership(web, carol, "owner", context=SYSTEM)


def test_grants_are_created_with_their_registry_expiry_and_creator(carol: User, ada: User) -> None:
    registry = services.create_registry("registry", url="http://127.0.0.1:5000", context=SYSTEM)
    expires = timezone.now() + timedelta(days=3)
    grant = services.create_grant(
        carol, "web/app", "read", registry=registry, expires_at=expires, context=AuditContext.for_user(ada)
    )
    assert grant.created_by == ada
    change = last_change()
    assert change["action"] == "grant.create"
    assert change["after"]["registry"] == "registry"
    assert change["after"]["expires_at"] == expires.isoformat()


@pytest.mark.parametrize("pattern", ["Web/App", "web//app", "/web", "web/a**", "", "x" * 256])
def test_a_bad_pattern_is_refused_and_nothing_is_recorded(carol: User, pattern: str) -> None:
    before = AuditRecord.objects.count()
    with pytest.raises(ValidationError):
        services.create_grant(carol, pattern, "read", context=SYSTEM)
    assert AuditRecord.objects.count() == before
    assert not Grant.objects.exists()


def test_a_duplicate_grant_is_refused_clearly(carol: User) -> None:
    services.create_grant(carol, "web/*", "read", context=SYSTEM)
    with pytest.raises(ValidationError, match="already has a grant"):
        services.create_grant(carol, "web/*", "write", context=SYSTEM)
    assert Grant.objects.count() == 1


def test_the_same_pattern_may_be_granted_per_registry(carol: User) -> None:
    one = services.create_registry("one", context=SYSTEM)
    services.create_grant(carol, "web/*", "read", context=SYSTEM)
    services.create_grant(carol, "web/*", "write", registry=one, context=SYSTEM)
    assert Grant.objects.filter(user=carol).count() == 2


def test_a_naive_expiry_is_refused(carol: User) -> None:
    with pytest.raises(ValidationError, match="time zone"):
        services.create_grant(carol, "web/app", "read", expires_at=timezone.now().replace(tzinfo=None), context=SYSTEM)


def test_update_and_revoke_grant_record_before_and_after(carol: User) -> None:
    grant = services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.update_grant(grant, role="write", context=SYSTEM)
    change = last_change()
    assert (change["before"]["role"], change["after"]["role"]) == ("read", "write")
    services.revoke_grant(Grant.objects.get(pk=grant.pk), context=SYSTEM)
    assert last_change()["action"] == "grant.revoke"
    assert not Grant.objects.exists()


def test_purging_expired_grants_records_each_expiry(carol: User, web: Team) -> None:
    past = timezone.now() - timedelta(minutes=1)
    services.create_grant(carol, "web/app", "read", expires_at=past, context=SYSTEM)
    services.create_grant(web, "web/**", "write", expires_at=past, context=SYSTEM)
    services.create_grant(carol, "web/keep", "read", expires_at=timezone.now() + timedelta(days=1), context=SYSTEM)
    assert services.purge_expired_grants() == 2
    assert list(Grant.objects.values_list("pattern", flat=True)) == ["web/keep"]
    expired = AuditRecord.objects.filter(detail__action="grant.expire")
    assert expired.count() == 2
    assert set(expired.values_list("actor", flat=True)) == {"expiry"}


def test_repositories_and_registries_are_audited() -> None:
    registry = services.create_registry("hub", url="https://hub.example.org/", context=SYSTEM)
    assert registry.url == "https://hub.example.org"
    repo = services.create_repository("pub/base", public=False, context=SYSTEM)
    services.set_repository_public(repo, True, context=SYSTEM)
    assert last_change()["after"] == {"public": True}
    assert Repository.objects.get().public
    with pytest.raises(ValidationError, match="already exists"):
        services.create_repository("pub/base", context=SYSTEM)
    services.update_registry(registry, auth_mode="htpasswd", context=SYSTEM)
    assert Registry.objects.get().auth_mode == "htpasswd"
    actions = list(AuditRecord.objects.order_by("id").values_list("detail__action", flat=True))
    assert actions == ["registry.create", "repository.create", "repository.update", "registry.update"]


def test_deleting_a_team_records_its_members_and_grants(web: Team) -> None:
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.delete_team(Team.objects.get(pk=web.pk), context=SYSTEM)
    change = last_change()
    assert change["before"]["members"] == {"alice": "maintainer", "bob": "member"}
    assert change["before"]["grants"][0]["pattern"] == "web/**"


def test_audit_records_are_append_only(carol: User) -> None:
    record = AuditRecord.objects.first()
    with pytest.raises(AppendOnlyError):
        record.save()
    with pytest.raises(AppendOnlyError):
        record.delete()
    with pytest.raises(AppendOnlyError):
        AuditRecord.objects.all().update(outcome="forged")
    with pytest.raises(AppendOnlyError):
        AuditRecord.objects.all().delete()


def test_a_failed_change_leaves_no_record_behind(carol: User) -> None:
    before = AuditRecord.objects.count()
    with pytest.raises(ValidationError):
        make_user("carol")  # duplicate username
    assert AuditRecord.objects.count() == before
