"""Keys that protect keys: KEY_ENCRYPTION_KEY_FALLBACKS and ``manage.py rewrap_secrets``.

Key "A" wrapped everything (the signing keys, after a rotation: current, next and previous; the
notification secrets of registry and mirror); the operator rotates to "B" with A in the fallbacks,
runs rewrap_secrets, and drops A.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import models

from accounts import services
from accounts.models import CredentialPepper, NotificationEndpoint, Registry, SigningKey
from accounts.registry import keys
from accounts.registry.endpoints import check_bearer
from audit.models import AuditRecord
from registryadmin import keywrap
from registryadmin.env import envsecretlist
from tests.conftest import SYSTEM
from tests.ops.test_settings import load_settings

A, B = "key-encryption-key-A-0123456789abcdef", "key-encryption-key-B-0123456789abcdef"
FALLBACKS = "KEY_ENCRYPTION_KEY_FALLBACKS"


def under(settings, current: str, *fallbacks: str) -> None:
    settings.KEY_ENCRYPTION_KEY = current
    settings.KEY_ENCRYPTION_KEY_FALLBACKS = list(fallbacks)


@pytest.fixture
def wrapped_under_a(settings, db: None) -> dict[str, str]:
    """Three signing keys and two notification secrets, all wrapped with A; the secrets, by registry."""
    under(settings, A)
    services.ensure_keys()
    services.rotate_signing_key(SYSTEM)
    registries = [services.create_registry(service, context=SYSTEM) for service in ("registry", "mirror")]
    pepper = b"an old host's pepper, as a restore keeps it"
    CredentialPepper.objects.create(pepper=keywrap.wrap(pepper), fingerprint="0123456789abcdef", source="backup")
    return {registry.service: services.notification_secret(registry) for registry in registries}


def stored() -> dict[str, bytes]:
    rows = {f"key {k.kid}": bytes(k.private_key) for k in SigningKey.objects.all()}
    rows |= {f"pepper {p.fingerprint}": bytes(p.pepper) for p in CredentialPepper.objects.all()}
    return rows | {f"secret {e.registry_id}": bytes(e.secret) for e in NotificationEndpoint.objects.all()}


def rewrap_records() -> list[AuditRecord]:
    return list(AuditRecord.objects.filter(kind="admin_change", detail__action="secrets.rewrap").order_by("id"))


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("rewrap_secrets", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def assert_every_key_signs_and_every_secret_reads(secrets: dict[str, str]) -> None:
    for key in SigningKey.objects.all():
        token = keys.load_signer(key).sign({"sub": "alice", "aud": "registry"})
        public = x509.load_pem_x509_certificate(key.certificate.encode()).public_key()
        assert jwt.decode(token, public, algorithms=["ES256"], audience="registry")["sub"] == "alice"
    keys.current_signer.clear()
    assert keys.current_signer.get().kid == SigningKey.objects.get(state="current").kid
    for service, secret in secrets.items():
        registry = Registry.objects.get(service=service)
        assert check_bearer(registry, f"Bearer {secret}")
        assert services.notification_secret(registry) == secret


# --- keywrap: the current key wraps, the fallbacks only read -------------------------------------


def test_a_value_wrapped_with_a_reads_under_b_only_while_a_is_a_fallback(settings) -> None:
    under(settings, A)
    ciphertext = keywrap.wrap(b"private")
    under(settings, B, A)
    assert keywrap.unwrap(ciphertext) == b"private"
    under(settings, B)
    with pytest.raises(keywrap.KeyUnwrapError, match="KEY_ENCRYPTION_KEY_FALLBACKS"):
        keywrap.unwrap(ciphertext)


def test_wrap_always_uses_the_current_key_never_a_fallback(settings) -> None:
    under(settings, B, A)
    ciphertext = keywrap.wrap(b"private")
    under(settings, B)
    assert keywrap.unwrap(ciphertext) == b"private"
    assert keywrap.rewrap(ciphertext) is None


def test_rewrap_tells_a_value_under_the_current_key_from_one_under_a_fallback(settings) -> None:
    under(settings, A)
    old = keywrap.wrap(b"private")
    under(settings, B, A)
    moved = keywrap.rewrap(old)
    assert moved is not None and keywrap.rewrap(moved) is None
    under(settings, B)
    assert keywrap.unwrap(moved) == b"private"


def test_values_wrapped_before_a_key_encryption_key_existed_still_read_from_the_secret_key(settings) -> None:
    settings.KEY_ENCRYPTION_KEY = None
    legacy = keywrap.wrap(b"private")  # derived from SECRET_KEY
    under(settings, B)
    assert keywrap.unwrap(legacy) == b"private"
    assert keywrap.rewrap(legacy) is not None


# --- the service and the command ------------------------------------------------------------------


def test_rewrap_moves_every_signing_key_and_notification_secret_under_the_new_key(
    settings,
    wrapped_under_a: dict[str, str],
) -> None:
    before = stored()
    under(settings, B, A)
    result = services.rewrap.rewrap_all(SYSTEM)
    assert [(t.kind, t.rewrapped, t.current, t.unreadable) for t in result.tallies] == [
        ("signing_key", 3, 0, []),
        ("notification_secret", 2, 0, []),
        ("previous_notification_secret", 0, 0, []),  # no rotation's grace is running
        ("credential_pepper", 1, 0, []),
    ]
    after = stored()
    assert set(after) == set(before) and all(after[row] != before[row] for row in before)
    under(settings, B)  # A is gone: only B reads from now on
    assert_every_key_signs_and_every_secret_reads(wrapped_under_a)


def test_rewrap_writes_one_admin_change_record_with_counts_and_no_secret(
    settings,
    wrapped_under_a: dict[str, str],
) -> None:
    under(settings, B, A)
    pems = [keywrap.unwrap(k.private_key).decode() for k in SigningKey.objects.all()]
    services.rewrap.rewrap_all(SYSTEM)
    [entry] = rewrap_records()
    assert (entry.kind, entry.outcome, entry.actor) == ("admin_change", "success", "tests")
    assert entry.detail["counts"] == {
        "signing_key": {"rewrapped": 3, "current": 0, "unreadable": 0},
        "notification_secret": {"rewrapped": 2, "current": 0, "unreadable": 0},
        "previous_notification_secret": {"rewrapped": 0, "current": 0, "unreadable": 0},
        "credential_pepper": {"rewrapped": 1, "current": 0, "unreadable": 0},
    }
    text = json.dumps(entry.detail)
    assert not [secret for secret in [*wrapped_under_a.values(), A, B] if secret in text]
    assert not [pem for pem in pems if pem.strip().splitlines()[1] in text]


def test_a_second_run_rewraps_nothing(settings, wrapped_under_a: dict[str, str]) -> None:
    under(settings, B, A)
    services.rewrap.rewrap_all(SYSTEM)
    moved = stored()
    out, _ = run()
    assert stored() == moved
    assert "signing keys: rewrapped 0, already current 3, unreadable 0" in out
    assert "notification secrets: rewrapped 0, already current 2, unreadable 0" in out
    assert rewrap_records()[-1].detail["counts"]["signing_key"] == {"rewrapped": 0, "current": 3, "unreadable": 0}


def test_an_unreadable_row_is_named_with_the_remedy_the_rest_is_rewrapped_and_the_command_exits_1(
    settings,
    wrapped_under_a: dict[str, str],
) -> None:
    lost = SigningKey.objects.get(state="previous")
    SigningKey.objects.filter(pk=lost.pk).update(private_key=Fernet(Fernet.generate_key()).encrypt(b"gone"))
    under(settings, B, A)
    err = io.StringIO()
    with pytest.raises(CommandError) as refused:
        call_command("rewrap_secrets", stdout=io.StringIO(), stderr=err)
    assert refused.value.returncode == 1
    assert f"unreadable: signing key {lost.kid} (previous)" in err.getvalue()
    assert "KEY_ENCRYPTION_KEY_FALLBACKS" in str(refused.value) and "rewrapped the rest" in str(refused.value)
    [entry] = rewrap_records()
    assert entry.outcome == "failure"
    assert entry.detail["unreadable"] == [f"signing key {lost.kid} (previous)"]
    assert entry.detail["counts"]["signing_key"] == {"rewrapped": 2, "current": 0, "unreadable": 1}
    under(settings, B)
    assert all(keywrap.unwrap(k.private_key) for k in SigningKey.objects.exclude(pk=lost.pk))
    assert all(keywrap.unwrap(e.secret) for e in NotificationEndpoint.objects.all())


def test_a_dry_run_counts_and_changes_nothing(settings, wrapped_under_a: dict[str, str]) -> None:
    before = stored()
    under(settings, B, A)
    out, _ = run("--dry-run")
    assert "signing keys: would rewrap 3, already current 0, unreadable 0" in out
    assert "notification secrets: would rewrap 2" in out
    assert stored() == before and rewrap_records() == []
    under(settings, B)
    with pytest.raises(keywrap.KeyUnwrapError):
        keywrap.unwrap(SigningKey.objects.get(state="current").private_key)


def test_values_from_before_a_key_encryption_key_are_moved_under_the_new_one(settings, db: None) -> None:
    settings.KEY_ENCRYPTION_KEY = None
    services.ensure_keys()
    under(settings, B)  # the SECRET_KEY-derived key is always tried: no fallback needed for these
    assert services.rewrap.rewrap_all(SYSTEM).rewrapped == 2
    settings.SECRET_KEY = "a-rotated-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz"
    assert all(keywrap.unwrap(k.private_key) for k in SigningKey.objects.all())


def test_large_runs_report_progress_per_batch_on_stderr(
    settings,
    wrapped_under_a: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services.rewrap, "BATCH_SIZE", 1)
    under(settings, B, A)
    out, err = run()
    assert err.splitlines() == [
        "signing keys: 1/3",
        "signing keys: 2/3",
        "signing keys: 3/3",
        "notification secrets: 1/2",
        "notification secrets: 2/2",
    ]
    assert "signing keys: rewrapped 3" in out


def test_every_binary_column_is_one_rewrap_knows() -> None:
    """A new encrypted column must be added to ``WRAPPED``, or a rotation would leave it behind."""
    binary = {
        (model, column.name)
        for model in apps.get_models()
        for column in model._meta.get_fields()
        if isinstance(column, models.BinaryField)
    }
    assert binary == {(spec.model, spec.column) for spec in services.rewrap.WRAPPED}


# --- the setting ----------------------------------------------------------------------------------


def test_fallbacks_are_read_comma_separated_or_one_per_line_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(FALLBACKS, f" {A} , {B} ")
    assert envsecretlist(FALLBACKS) == [A, B]
    monkeypatch.delenv(FALLBACKS)
    assert envsecretlist(FALLBACKS) == []
    listed = tmp_path / "fallbacks"
    listed.write_text(f"{A}\n\n{B}\n")
    monkeypatch.setenv(f"{FALLBACKS}_FILE", str(listed))
    assert envsecretlist(FALLBACKS) == [A, B]


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({FALLBACKS: f"{A},,{B}"}, "entry 2 of 3 is empty"),
        ({FALLBACKS: f"{A},"}, "entry 2 of 2 is empty"),
        ({FALLBACKS: f"{A} {B}"}, "separate keys with commas"),
        ({FALLBACKS: f"{A}\x07"}, "control character"),
    ],
)
def test_a_malformed_fallback_list_is_refused_by_name_without_printing_a_key(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured, match=message) as refused:
        envsecretlist(FALLBACKS)
    assert FALLBACKS in str(refused.value) and A not in str(refused.value) and B not in str(refused.value)


def test_a_fallback_file_with_commas_or_both_forms_at_once_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    listed = tmp_path / "fallbacks"
    listed.write_text(f"{A},{B}\n")
    monkeypatch.setenv(f"{FALLBACKS}_FILE", str(listed))
    with pytest.raises(ImproperlyConfigured, match=f"{FALLBACKS}_FILE: entry 1 of 1 .* one key on each line"):
        envsecretlist(FALLBACKS)
    monkeypatch.setenv(FALLBACKS, A)
    with pytest.raises(ImproperlyConfigured, match=f"Set either {FALLBACKS} or {FALLBACKS}_FILE"):
        envsecretlist(FALLBACKS)


def test_start_up_refuses_a_malformed_fallback_naming_the_variable_and_accepts_a_good_one(tmp_path: Path) -> None:
    refused = load_settings(tmp_path, KEY_ENCRYPTION_KEY=B, KEY_ENCRYPTION_KEY_FALLBACKS=f"{A},,")
    assert refused.returncode != 0 and "ImproperlyConfigured" in refused.stderr
    assert FALLBACKS in refused.stderr.strip().splitlines()[-1]
    assert A not in refused.stderr and B not in refused.stderr
    missing = load_settings(tmp_path, KEY_ENCRYPTION_KEY_FALLBACKS_FILE=str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and f"{FALLBACKS}_FILE" in missing.stderr.strip().splitlines()[-1]
    assert load_settings(tmp_path, KEY_ENCRYPTION_KEY=B, KEY_ENCRYPTION_KEY_FALLBACKS=A).returncode == 0


def test_a_previous_notification_secret_in_its_grace_is_rewrapped_too(
    settings, wrapped_under_a: dict[str, str]
) -> None:
    registry = Registry.objects.order_by("pk").first()
    old = services.notification_secret(registry)
    services.rotate_notification_secret(registry, SYSTEM)
    under(settings, B, A)
    result = services.rewrap.rewrap_all(SYSTEM)
    assert {t.kind: t.rewrapped for t in result.tallies}["previous_notification_secret"] == 1
    under(settings, B)
    assert check_bearer(registry, f"Bearer {old}") == "previous"
