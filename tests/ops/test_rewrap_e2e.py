"""Rotating KEY_ENCRYPTION_KEY end to end: the real command, gunicorn, a real docker-registry and skopeo.

alice leads team web (write on web/**). Key A wraps three signing keys (previous, current, next) and
the registry's notification secret; the operator sets B with A in KEY_ENCRYPTION_KEY_FALLBACKS, runs
``manage.py rewrap_secrets``, drops A and restarts: tokens signed with the current key, and after a
rotation with the next one, are still accepted by the registry, and its notifications still get in.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest

from accounts import services
from accounts.models import SigningKey
from accounts.registry.keys import RELOAD_SECONDS
from audit.models import AuditRecord
from tests.conftest import PASSWORD, SYSTEM, make_user
from tests.e2e_stack import AppServer, eventually, registry_for
from tests.harness import require_binary
from tests.harness.clients import Skopeo
from tests.harness.ociimage import OciImage, write_oci_image
from tests.harness.registry import RegistryServer

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

A, B = "e2e-key-encryption-key-A-0123456789abcdef", "e2e-key-encryption-key-B-0123456789abcdef"
ALICE = ("alice", PASSWORD)


@pytest.fixture
def stack(subprocess_env: dict[str, str], tmp_path: Path) -> Iterator[tuple[AppServer, RegistryServer]]:
    """Everything wrapped with A: keys made and rotated once by manage.py, the secret by registry_config."""
    require_binary("docker-registry")
    require_binary("skopeo")
    alice = make_user("alice")
    web = services.create_team("web", context=SYSTEM)
    services.set_membership(web, alice, "maintainer", context=SYSTEM)
    services.create_grant(web, "web/**", "write", context=SYSTEM)
    registry_row = services.create_registry("registry", context=SYSTEM)
    app = AppServer(subprocess_env | {"KEY_ENCRYPTION_KEY": A}, tmp_path)
    app.manage("rotate_signing_key")  # makes current and next, then promotes: previous, current, next
    registry = registry_for(app, tmp_path)  # its bundle holds all three; the notification secret is made
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
    return write_oci_image(tmp_path / "image", payload=b"keys that protect keys")


def pushed(tag: str) -> bool:
    return AuditRecord.objects.filter(kind="registry_event", outcome="push", actor="alice", detail__tag=tag).exists()


def token_kid(app: AppServer) -> str:
    basic = base64.b64encode(f"{ALICE[0]}:{ALICE[1]}".encode()).decode()
    request = urllib.request.Request(
        f"{app.url}/auth/token?service=registry&scope=repository:web/app:pull",
        headers={"Authorization": f"Basic {basic}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback test server
        return jwt.get_unverified_header(json.load(response)["token"])["kid"]


def restart(app: AppServer, **env: str) -> None:
    app.stop()
    app.env = {k: v for k, v in app.env.items() if not k.startswith("KEY_ENCRYPTION_KEY")} | env
    app.start()


def test_after_rewrap_secrets_every_key_still_signs_tokens_the_registry_accepts_with_only_the_new_key(
    stack: tuple[AppServer, RegistryServer], image: OciImage
) -> None:
    app, registry = stack
    skopeo = Skopeo(registry.host)
    skopeo.copy_to(image, "web/app", "v1", ALICE).check()
    eventually(lambda: pushed("v1"), what="the push event, under key A")

    # Skipping the rewrap: with A gone, the command names what nobody can read, and exits 1.
    app.stop()
    app.env = {k: v for k, v in app.env.items() if not k.startswith("KEY_ENCRYPTION_KEY")}
    skipped = app.manage("rewrap_secrets", "--dry-run", check=False)
    assert skipped.returncode == 1, skipped.stdout + skipped.stderr
    assert skipped.stderr.count("unreadable: signing key") == 3
    assert "unreadable: notification secret of registry registry" in skipped.stderr
    assert "KEY_ENCRYPTION_KEY_FALLBACKS" in skipped.stderr

    # The rotation as documented: B current, A a fallback, rewrap (twice: the second moves nothing).
    app.env |= {"KEY_ENCRYPTION_KEY": B, "KEY_ENCRYPTION_KEY_FALLBACKS": A}
    first = app.manage("rewrap_secrets").stdout
    assert "signing keys: rewrapped 3, already current 0, unreadable 0" in first
    assert "notification secrets: rewrapped 1, already current 0, unreadable 0" in first
    second = app.manage("rewrap_secrets").stdout
    assert "signing keys: rewrapped 0, already current 3, unreadable 0" in second
    assert "notification secrets: rewrapped 0, already current 1" in second
    assert A not in first + second and B not in first + second
    [record, _] = AuditRecord.objects.filter(detail__action="secrets.rewrap").order_by("id")
    assert record.detail["counts"]["signing_key"] == {"rewrapped": 3, "current": 0, "unreadable": 0}

    # A dropped: gunicorn reads everything with B alone.
    restart(app, KEY_ENCRYPTION_KEY=B)
    assert app.manage("rewrap_secrets", "--dry-run").returncode == 0
    skopeo.inspect("web/app", "v1", ALICE).check()
    assert token_kid(app) == SigningKey.objects.get(state="current").kid
    skopeo.copy_to(image, "web/app", "v2", ALICE).check()
    eventually(lambda: pushed("v2"), what="the push event, its notification secret read with B")

    # The next key was rewrapped too: the preflight signs with it, the registry accepts, it takes over.
    following = SigningKey.objects.get(state="next").kid
    rotated = app.manage("rotate_signing_key")
    assert "accepts the next key" in rotated.stderr and following in rotated.stdout
    time.sleep(RELOAD_SECONDS + 0.5)  # gunicorn's workers look for a new current key this often
    assert token_kid(app) == following
    skopeo.inspect("web/app", "v2", ALICE).check()
