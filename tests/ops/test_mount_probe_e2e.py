"""A real cross-repository mount check, by skopeo and containerd against the real registry.

alice writes base/**, carol writes web/app and holds nothing under base/. alice pushes an image
to base/img; carol then pushes the same layers to web/app. The client, knowing the blobs are in
base/img, asks for ``repository:base/img:pull`` beside ``repository:web/app:pull,push`` to mount
them from there; we refuse that pull, the client uploads the blobs itself and the push succeeds.
The token request is a ``probe``, not a denial: the home page's recent denials stay empty.

skopeo (containers/image) only tries a mount for a blob its blob info cache has seen in another
repository of the same registry (``/var/lib/containers/cache`` as root, ``~/.local/share/containers/cache``
otherwise): alice's push, from the same machine, is what teaches it. containerd tries one for
content whose ``containerd.io/distribution.source`` label names another repository: alice's pull sets it.
containerd before 2.1 then fails the push on the registry's 401 to the mount instead of uploading
(containerd#11709): its attempt is still a probe, never a denial.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.utils import timezone

from accounts import services
from accounts.web.overview import recent_denials
from audit.models import AuditRecord, Kind
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.e2e_stack import AppServer, eventually, registry_for
from tests.harness import require_binary, require_root
from tests.harness.clients import Containerd, Skopeo
from tests.harness.ociimage import OciImage, write_oci_image
from tests.harness.registry import RegistryServer

pytestmark = pytest.mark.e2e

ALICE = ("alice", PASSWORD)
CAROL = ("carol", PASSWORD)


@pytest.fixture
def stack(transactional_db: None, subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[RegistryServer]:
    require_binary("docker-registry")
    require_binary("skopeo")
    alice, carol = make_user("alice"), make_user("carol")
    services.create_grant(alice, "base/**", "write", context=SYSTEM)
    services.create_grant(carol, "web/**", "write", context=SYSTEM)
    app = AppServer(subprocess_env, tmp_path)
    registry_row = services.create_registry("registry", context=SYSTEM)
    registry = registry_for(app, tmp_path)
    services.update_registry(registry_row, url=registry.url, context=SYSTEM)
    app.start()
    registry.start()
    try:
        yield registry
    finally:
        registry.close()
        app.stop()


@pytest.fixture
def image(tmp_path: Path) -> OciImage:
    # Digests of its own: no other test's push can have taught the client where these blobs are.
    return write_oci_image(tmp_path / "image", payload=f"mount probe {secrets.token_hex(8)}".encode())


def mount_checks(actor: str, source: str) -> list[AuditRecord]:
    """``actor``'s access records that asked pull on ``source`` beside another scope, in one request."""
    found = []
    for record in AuditRecord.objects.filter(kind=Kind.ACCESS, actor=actor).order_by("id"):
        asked = {(entry["name"], tuple(entry["requested"])) for entry in record.actions}
        if (source, ("pull",)) in asked and len(asked) > 1:
            found.append(record)
    return found


def assert_only_probes(actor: str) -> None:
    outcomes = set(AuditRecord.objects.filter(kind=Kind.ACCESS, actor=actor).values_list("outcome", flat=True))
    assert outcomes <= {"granted", "probe"}, outcomes
    assert recent_denials(timezone.now()) == []


def test_skopeo_mounting_from_a_repository_carol_cannot_read_is_a_probe_and_her_push_succeeds(
    stack: RegistryServer, image: OciImage
) -> None:
    skopeo = Skopeo(stack.host)
    skopeo.copy_to(image, "base/img", "v1", ALICE).check()
    skopeo.copy_to(image, "web/app", "v1", CAROL).check()
    probes = mount_checks("carol", "base/img")
    assert probes, "skopeo asked no mount scope:\n" + stack.log_tail()
    for probe in probes:
        assert (probe.outcome, probe.repository) == ("probe", "web/app")
        by_name = {entry["name"]: entry for entry in probe.actions}
        assert by_name["web/app"]["granted"] == ["pull", "push"] and by_name["base/img"]["denied"] == ["pull"]
    assert_only_probes("carol")
    # The push really landed, blobs uploaded by carol herself: she can read it back.
    assert skopeo.inspect("web/app", "v1", CAROL).check().json()["Digest"] == image.manifest_digest
    eventually(
        lambda: AuditRecord.objects.filter(
            kind=Kind.REGISTRY_EVENT, outcome="push", actor="carol", repository="web/app", detail__tag="v1"
        ).exists(),
        what="carol's push event",
    )


def test_containerd_mounting_from_a_repository_carol_cannot_read_is_a_probe(
    stack: RegistryServer, image: OciImage
) -> None:
    require_binary("containerd")
    require_root()
    Skopeo(stack.host).copy_to(image, "base/img", "v1", ALICE).check()
    source, target = f"{stack.host}/base/img:v1", f"{stack.host}/web/app:v1"
    with Containerd() as ctr:
        ctr.pull(source, ALICE).check()  # labels the content as coming from base/img
        ctr.tag(source, target)
        pushed = ctr.push(target, CAROL)
    probes = mount_checks("carol", "base/img")
    assert probes, "containerd asked no mount scope:\n" + stack.log_tail()
    # containerd names the mount source first: the record still names the repository pushed to.
    assert {(probe.outcome, probe.repository) for probe in probes} == {("probe", "web/app")}
    assert {probe.detail["method"] for probe in probes} >= {"POST"}  # containerd's OAuth2 form
    assert_only_probes("carol")
    if not pushed.ok:
        # containerd before 2.1 gives up on the registry's 401 to the mount instead of uploading the
        # blob (containerd#11709): no token could help short of granting carol pull on base/img.
        assert "insufficient_scope" in pushed.stderr, pushed.describe()
