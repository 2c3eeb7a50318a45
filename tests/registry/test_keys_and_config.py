"""Signing keys, the certificate bundle, rotation, and the registry configuration fragment."""

from __future__ import annotations

import base64
import hashlib
import io
import stat
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts import services
from accounts.models import SigningKey
from accounts.registry import keys
from accounts.registry.signing import generate_private_key, libtrust_kid
from audit.context import AuditContext
from audit.models import AuditRecord
from tests.conftest import SYSTEM

pytestmark = pytest.mark.django_db


def bundle_kids(pem: str) -> list[str]:
    return [libtrust_kid(c.public_key()) for c in x509.load_pem_x509_certificates(pem.encode())]


def test_the_libtrust_kid_has_twelve_groups_of_four_from_the_der_key() -> None:
    key = generate_private_key()
    kid = libtrust_kid(key.public_key())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    expected = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode()
    assert kid.replace(":", "") == expected
    assert [len(group) for group in kid.split(":")] == [4] * 12


def test_private_keys_are_encrypted_at_rest() -> None:
    services.ensure_keys()
    stored = bytes(SigningKey.objects.get(state="current").private_key)
    assert b"PRIVATE KEY" not in stored
    assert keys.load_signer(SigningKey.objects.get(state="current")).kid == SigningKey.objects.get(state="current").kid


def test_certificates_are_backdated_and_outlive_the_key() -> None:
    services.ensure_keys()
    cert = x509.load_pem_x509_certificate(SigningKey.objects.get(state="current").certificate.encode())
    assert cert.not_valid_before_utc < timezone.now() - timedelta(hours=12)
    assert cert.not_valid_after_utc > timezone.now() + timedelta(days=365 * 5)


def test_the_bundle_holds_current_and_next_then_previous_after_rotation() -> None:
    services.ensure_keys()
    current, nxt = (SigningKey.objects.get(state=s).kid for s in ("current", "next"))
    assert set(bundle_kids(keys.bundle_pem())) == {current, nxt}
    services.rotate_signing_key(SYSTEM)
    assert SigningKey.objects.get(state="current").kid == nxt
    assert SigningKey.objects.get(state="previous").kid == current
    assert set(bundle_kids(keys.bundle_pem())) == {current, nxt, SigningKey.objects.get(state="next").kid}
    services.rotate_signing_key(SYSTEM)
    assert SigningKey.objects.get(kid=current).state == "retired"
    assert current not in bundle_kids(keys.bundle_pem())


def test_a_worker_picks_up_a_rotation_made_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    services.ensure_keys()
    before = keys.current_signer.get().kid
    services.rotate_signing_key(SYSTEM)
    monkeypatch.setattr(keys, "RELOAD_SECONDS", 0.0)
    assert keys.current_signer.get().kid != before


def test_a_changed_key_encryption_key_is_reported_clearly(settings) -> None:
    services.ensure_keys()
    settings.KEY_ENCRYPTION_KEY = "a-different-key-entirely"
    settings.SECRET_KEY = "another-secret-key-that-is-long-enough-0123456789"
    with pytest.raises(Exception, match="SECRET_KEY_FALLBACKS"):
        keys.load_signer(SigningKey.objects.get(state="current"))


def test_registry_config_writes_the_bundle_and_prints_only_auth_and_notifications(tmp_path: Path) -> None:
    services.create_registry("registry", context=SYSTEM)
    out, err = io.StringIO(), io.StringIO()
    call_command("registry_config", "--output-dir", str(tmp_path), stdout=out, stderr=err)
    fragment = yaml.safe_load(out.getvalue())
    assert set(fragment) == {"auth", "notifications"}
    token = fragment["auth"]["token"]
    assert token["realm"].endswith("/auth/token")
    assert (token["service"], token["issuer"]) == ("registry", "registryadmin")
    bundle = Path(token["rootcertbundle"])
    assert bundle.is_absolute() and bundle.parent == tmp_path.resolve()
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o644
    assert len(bundle_kids(bundle.read_text())) == 2
    endpoint = fragment["notifications"]["endpoints"][0]
    assert endpoint["url"].endswith("/registry/registry/events")
    assert endpoint["headers"]["Authorization"][0].startswith("Bearer rgn_")
    assert {"timeout", "threshold", "backoff"} <= set(endpoint)
    assert "wrote" in err.getvalue()
    again = io.StringIO()
    call_command("registry_config", "--output-dir", str(tmp_path), stdout=again, stderr=io.StringIO())
    assert again.getvalue() == out.getvalue()  # the secret and keys are stable between runs


def test_registry_config_names_the_choices_when_unclear(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no registry is configured"):
        call_command("registry_config", stdout=io.StringIO())
    services.create_registry("one", context=SYSTEM)
    services.create_registry("two", context=SYSTEM)
    with pytest.raises(CommandError, match="one, two"):
        call_command("registry_config", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no registry 'three'"):
        call_command("registry_config", "--registry", "three", stdout=io.StringIO())


def test_rotation_without_reachable_registries_warns_and_proceeds() -> None:
    services.create_registry("registry", context=SYSTEM)  # no URL
    err = io.StringIO()
    call_command("rotate_signing_key", stdout=io.StringIO(), stderr=err)
    assert "WARN registry: no URL known" in err.getvalue()


def test_rotation_refuses_when_a_registry_is_unreachable_unless_forced() -> None:
    services.create_registry("registry", url="http://127.0.0.1:9", context=SYSTEM)
    with pytest.raises(CommandError, match="not rotated"):
        call_command("rotate_signing_key", stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()
    call_command("rotate_signing_key", "--force", stdout=out, stderr=io.StringIO())
    assert "rotated" in out.getvalue()


def test_rotation_is_recorded() -> None:
    services.rotate_signing_key(AuditContext.system("tests"))

    assert AuditRecord.objects.filter(kind="credential", detail__action="signing_key.rotate").exists()
