"""Directory users end to end: gunicorn configured with LDAP_* for a real slapd, a real docker-registry
using us as its token server, skopeo and containerd signing in with directory passwords.

dora is in the directory group web-devs, which team web maps (write on web/**); eve is in the directory
but in no mapped group; ada is a local admin. The sync runs as an operator runs it: manage.py sync_ldap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from accounts import services
from accounts.models import Membership, User
from audit.models import AuditRecord
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.directory import directory, ldap_environment
from tests.e2e_stack import AppServer, registry_for
from tests.harness import require_binary, require_root
from tests.harness.clients import Containerd, Skopeo
from tests.harness.ociimage import OciImage, write_oci_image
from tests.harness.registry import RegistryServer
from tests.harness.slapd import Slapd
from tests.harness.slapd import slapd as slapd  # the fixture

pytestmark = pytest.mark.e2e
DORA = ("dora", "dora-directory-pw-1")
EVE = ("eve", "eve-directory-pw-1")


@pytest.fixture
def stack(
    transactional_db: None, slapd: Slapd, subprocess_env: dict[str, str], tmp_path: Path
) -> Iterator[tuple[AppServer, RegistryServer]]:
    require_binary("docker-registry")
    require_binary("skopeo")
    slapd.add_person("dora", DORA[1], mail="dora@example.org", given_name="Dora", sn="Explorer")
    slapd.add_person("eve", EVE[1])
    slapd.add_group("web-devs", ["dora"])
    make_user("ada", is_superuser=True)
    with directory(slapd):
        web = services.create_team("web", context=SYSTEM)
        services.directory.set_directory_groups(web, [(slapd.group_dn("web-devs"), "member")], context=SYSTEM)
        services.create_grant(web, "web/**", "write", context=SYSTEM)
    app = AppServer(subprocess_env | ldap_environment(slapd), tmp_path)
    row = services.create_registry("registry", context=SYSTEM)
    registry = registry_for(app, tmp_path)
    services.update_registry(row, url=registry.url, context=SYSTEM)
    app.start()
    registry.start()
    try:
        yield app, registry
    finally:
        registry.close()
        app.stop()


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    return write_oci_image(tmp_path / "image", payload=b"pushed by a directory user")


def test_a_directory_user_pushes_through_a_group_grant_until_the_sync_removes_and_then_deactivates_them(
    stack: tuple[AppServer, RegistryServer], image: OciImage, slapd: Slapd
) -> None:
    app, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", DORA).check()
    dora = User.objects.get(username="dora")
    assert dora.from_directory and dora.email == "dora@example.org"
    assert Membership.objects.filter(team__name="web", user=dora).exists()
    # A wrong password right after the good one; a directory person in no mapped group may not push.
    wrong = skopeo.inspect("web/app", "v1", ("dora", "not-the-password"))
    assert not wrong.ok and wrong.auth_refused, wrong.describe()
    assert not skopeo.copy_to(image, "web/app", "eve", EVE).ok
    assert AuditRecord.objects.filter(kind="access", actor="eve", outcome__in=["denied", "partial"]).exists()
    # dora leaves the group: the next sync takes the membership, and the push is refused.
    slapd.remove_member("web-devs", "dora")
    dry = app.manage("sync_ldap", "--dry-run").stdout
    assert "- dora web (left cn=web-devs,ou=groups,dc=example,dc=org)" in dry and "nothing was changed" in dry
    assert Membership.objects.filter(team__name="web", user=dora).exists()
    assert "- dora web" in app.manage("sync_ldap").stdout
    assert not Membership.objects.filter(team__name="web", user=dora).exists()
    refused = skopeo.copy_to(image, "web/app", "v2", DORA)
    assert not refused.ok and refused.auth_refused, refused.describe()
    # dora is deleted from the directory: the sync deactivates her and every client is refused.
    slapd.delete_person("dora")
    assert "- dora (deactivated: no longer in the directory)" in app.manage("sync_ldap").stdout
    gone = skopeo.inspect("web/app", "v1", DORA)
    assert not gone.ok and gone.auth_refused, gone.describe()
    assert AuditRecord.objects.filter(kind="access", actor="dora", outcome="auth_failed").exists()
    assert AuditRecord.objects.filter(kind="job", detail__job="sync_ldap", outcome="success").count() == 2


def test_with_the_directory_down_directory_users_are_refused_clearly_and_the_local_admin_pushes(
    stack: tuple[AppServer, RegistryServer], image: OciImage, slapd: Slapd
) -> None:
    app, registry = stack
    skopeo = Skopeo(registry.host)
    slapd.stop()
    refused = skopeo.copy_to(image, "web/app", "v1", DORA)
    assert not refused.ok, refused.describe()
    record = AuditRecord.objects.filter(kind="access", actor="dora").latest("id")
    assert record.outcome == "auth_failed" and "cannot reach the directory" in str(record.detail)
    skopeo.copy_to(image, "web/app", "v1", ("ada", PASSWORD)).check()
    failed = app.manage("sync_ldap", check=False)
    assert failed.returncode != 0 and "cannot reach the directory" in failed.stderr
    slapd.start()
    skopeo.copy_to(image, "web/app", "v2", DORA).check()


def test_containerd_signs_in_with_a_directory_password_through_the_oauth2_form(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    require_binary("containerd")
    require_root()
    _, registry = stack
    Skopeo(registry.host).copy_to(image, "web/app", "v1", ("ada", PASSWORD)).check()
    ref = f"{registry.host}/web/app:v1"
    with Containerd() as ctr:
        ctr.pull(ref, DORA).check()
        assert AuditRecord.objects.filter(
            kind="access", actor="dora", outcome="granted", detail__method="POST"
        ).exists()
        assert not ctr.pull(ref, ("dora", "wrong-password")).ok
        ctr.tag(ref, f"{registry.host}/web/copy:v1")
        ctr.push(f"{registry.host}/web/copy:v1", DORA).check()
