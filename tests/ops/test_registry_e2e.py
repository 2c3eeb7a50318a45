"""A real docker-registry uses us as its token server; skopeo and containerd push, pull and delete.

alice leads team web (write on web/**), bob is a member, carol may read web/app,
erin is an outsider, dave is inactive, ada is the admin; pub/base is public.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts import services
from accounts.models import PersonalAccessToken, Registry, Repository, Robot
from audit.models import AuditRecord
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.e2e_stack import AppServer, eventually, registry_for
from tests.harness import require_binary, require_root
from tests.harness.clients import Containerd, Skopeo
from tests.harness.ociimage import OciImage, write_oci_image
from tests.harness.registry import RegistryServer

pytestmark = pytest.mark.e2e


def creds(name: str, password: str = PASSWORD) -> tuple[str, str]:
    return (name, password)


@pytest.fixture
def people(transactional_db: None) -> None:
    ada = make_user("ada", is_superuser=True)
    alice, bob, carol = make_user("alice"), make_user("bob"), make_user("carol")
    make_user("erin")
    make_user("dave", is_active=False)
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, alice, "maintainer", context=SYSTEM)
    services.set_membership(web, bob, "member", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/app", "read", context=SYSTEM)
    services.create_repository("pub/base", public=True, context=SYSTEM)
    assert ada.is_superuser


@pytest.fixture
def stack(people: None, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[AppServer, RegistryServer]]:
    require_binary("docker-registry")
    require_binary("skopeo")
    app = AppServer(subprocess_env, tmp_path)
    registry_row = services.create_registry("registry", context=SYSTEM)
    registry = registry_for(app, tmp_path)
    services.update_registry(registry_row, url=registry.url, context=SYSTEM)
    app.start()
    registry.start()
    try:
        yield app, registry
    finally:
        registry.close()
        app.stop()


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return write_oci_image(tmp_path / "image", payload=b"hello from registryadmin tests")


def access(outcome: str, actor: str, repository: str) -> bool:
    return AuditRecord.objects.filter(kind="access", outcome=outcome, actor=actor, repository=repository).exists()


def test_skopeo_pushes_pulls_and_deletes_with_exactly_the_rights_granted(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    _, registry = stack
    skopeo = Skopeo(registry.host)
    # The team maintainer pushes; the push event arrives through notifications.
    skopeo.copy_to(image, "web/app", "v1", creds("alice")).check()
    eventually(
        lambda: AuditRecord.objects.filter(
            kind="registry_event", outcome="push", actor="alice", repository="web/app", detail__tag="v1"
        ).exists(),
        what="the registry's push event",
    )
    assert Repository.objects.filter(name="web/app", registry__service="registry").exists()
    # A team member pushes too; carol may pull but not push.
    skopeo.copy_to(image, "web/tools", "v1", creds("bob")).check()
    skopeo.inspect("web/app", "v1", creds("carol")).check()
    refused = skopeo.copy_to(image, "web/app", "v2", creds("carol"))
    assert not refused.ok and refused.auth_refused, refused.describe()
    assert access("partial", "carol", "web/app") or access("denied", "carol", "web/app")
    # An outsider, an inactive user and a wrong password are refused.
    for who in (creds("erin"), creds("dave"), creds("alice", "wrong-password")):
        result = skopeo.inspect("web/app", "v1", who)
        assert not result.ok and result.auth_refused, result.describe()
    assert access("denied", "erin", "web/app")
    assert access("auth_failed", "dave", "web/app")
    # Anonymous pulls a public repository and cannot push to it.
    skopeo.copy_to(image, "pub/base", "latest", creds("ada")).check()
    skopeo.inspect("pub/base", "latest", None).check()
    assert not skopeo.copy_to(image, "pub/base", "evil", None).ok
    assert not skopeo.inspect("web/app", "v1", None).ok
    # Deleting needs admin: the maintainer (write) is refused, the admin deletes.
    assert not skopeo.delete("web/app", "v1", creds("alice")).ok
    skopeo.delete("web/app", "v1", creds("ada")).check()
    assert skopeo.inspect("web/app", "v1", creds("ada")).not_found
    eventually(
        lambda: AuditRecord.objects.filter(kind="registry_event", outcome="delete", actor="ada").exists(),
        what="the delete event",
    )
    granted = AuditRecord.objects.filter(kind="access", outcome="granted", actor="ada", repository="web/app")
    assert any("delete" in scope["granted"] for record in granted for scope in record.actions)


def test_containerd_pulls_and_pushes_through_the_oauth2_post_form(
    stack: tuple[AppServer, RegistryServer], image: OciImage, tmp_path: Path
) -> None:
    require_binary("containerd")
    require_root()
    _, registry = stack
    Skopeo(registry.host).copy_to(image, "web/app", "v1", creds("alice")).check()
    ref = f"{registry.host}/web/app:v1"
    with Containerd() as ctr:
        ctr.pull(ref, creds("carol")).check()
        assert AuditRecord.objects.filter(
            kind="access", actor="carol", outcome="granted", detail__method="POST"
        ).exists()
        denied = ctr.pull(ref, creds("erin"))
        assert not denied.ok
        wrong = ctr.pull(ref, creds("carol", "not-her-password"))
        assert not wrong.ok
        ctr.tag(ref, f"{registry.host}/web/copy:v1")
        ctr.push(f"{registry.host}/web/copy:v1", creds("bob")).check()
        assert not ctr.push(f"{registry.host}/web/copy:v1", creds("carol")).ok
    eventually(
        lambda: AuditRecord.objects.filter(
            kind="registry_event", outcome="push", actor="bob", repository="web/copy"
        ).exists(),
        what="bob's push event",
    )
    assert access("denied", "erin", "web/app")
    carol_failed = AuditRecord.objects.filter(kind="access", outcome="auth_failed", actor="carol")
    assert carol_failed.exclude(detail__has_key="retry_of").count() == 1  # containerd's POST + GET: one attempt
    assert not AuditRecord.objects.filter(kind="access", outcome="granted", actor="carol", repository="web/copy")


def test_rotation_needs_no_registry_restart_and_the_preflight_refuses_a_second_one(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    app, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", creds("alice")).check()
    first = app.manage("rotate_signing_key")
    assert "rotated" in first.stdout
    # The registry loaded `next` at start: tokens from the new current key work without a restart.
    eventually(lambda: skopeo.inspect("web/app", "v1", creds("carol")).ok, timeout=10, what="pull after rotation")
    second = app.manage("rotate_signing_key", check=False)
    assert second.returncode != 0
    assert "refused a token signed with the next key" in second.stderr
    assert "restart the registry" in second.stderr
    # After the operator follows the remedy, rotation works again.
    app.manage("registry_config", "--registry", "registry")
    registry.restart()
    assert "rotated" in app.manage("rotate_signing_key").stdout
    eventually(lambda: skopeo.inspect("web/app", "v1", creds("carol")).ok, timeout=10, what="pull after 2nd rotation")
    assert AuditRecord.objects.filter(kind="credential", detail__action="signing_key.rotate").count() == 2
    assert Registry.objects.get().url == registry.url


def test_a_robot_pushes_from_ci_and_a_personal_token_pulls_until_revoked(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    app, registry = stack
    out = app.manage("create_robot", "web", "ci", "--grant", "web/**:write").stdout
    robot = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert robot["username"] == "robot$web+ci"
    robot_creds = (robot["username"], robot["secret"])
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "ci-1", robot_creds).check()
    assert not skopeo.delete("web/app", "ci-1", robot_creds).ok  # write, not admin
    assert not skopeo.copy_to(image, "ops/app", "ci-1", robot_creds).ok
    eventually(
        lambda: AuditRecord.objects.filter(kind="registry_event", outcome="push", actor="robot$web+ci").exists(),
        what="the robot's push event",
    )
    token = app.manage("create_token", "carol", "laptop", "--read-only").stdout.strip()
    skopeo.inspect("web/app", "ci-1", ("carol", token)).check()
    assert not skopeo.copy_to(image, "web/app", "carol", ("carol", token)).ok
    require_binary("ctr")
    require_root()
    with Containerd() as ctr:
        ctr.pull(f"{registry.host}/web/app:ci-1", ("carol", token)).check()
        ctr.tag(f"{registry.host}/web/app:ci-1", f"{registry.host}/web/ctr:ci")
        ctr.push(f"{registry.host}/web/ctr:ci", robot_creds).check()
    services.revoke_access_token(PersonalAccessToken.objects.get(name="laptop"), context=SYSTEM)
    services.revoke_robot(Robot.objects.get(name="ci"), context=SYSTEM)
    assert skopeo.inspect("web/app", "ci-1", ("carol", token)).auth_refused
    assert skopeo.copy_to(image, "web/app", "ci-2", robot_creds).auth_refused
    failures = AuditRecord.objects.filter(kind="access", outcome="auth_failed")
    assert failures.filter(detail__credential="robot$web+ci").exists()
    assert failures.filter(detail__credential="carol/laptop").exists()
