"""Credential secrets (accounts.registry.secrets): random, prefixed, hashed under a rotatable key. No database."""

from __future__ import annotations

import hashlib
import re

from pytest_django import Settings

from accounts.constants import PAT_PREFIX, REFRESH_TOKEN_PREFIX, ROBOT_SECRET_PREFIX
from accounts.registry.secrets import hash_candidates, new_secret, secret_hash

SECRET = "rga_example"


def hashed_under(settings: Settings, key: str, secret: str = SECRET) -> str:
    """The hash ``secret`` gets while ``key`` is the current SECRET_KEY."""
    settings.SECRET_KEY = key
    return secret_hash(secret)


# --- new_secret ----------------------------------------------------------------------


def test_a_new_secret_starts_with_the_prefix_it_was_asked_for() -> None:
    for prefix in (ROBOT_SECRET_PREFIX, PAT_PREFIX, REFRESH_TOKEN_PREFIX):
        assert new_secret(prefix).startswith(prefix)


def test_a_new_secret_carries_32_random_bytes_in_url_safe_base64_after_the_prefix() -> None:
    body = new_secret(PAT_PREFIX).removeprefix(PAT_PREFIX)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", body), body  # 32 bytes, unpadded


def test_new_secrets_never_repeat() -> None:
    secrets = {new_secret(PAT_PREFIX) for _ in range(1000)}
    assert len(secrets) == 1000


# --- secret_hash ---------------------------------------------------------------------


def test_a_hash_is_64_hex_characters_and_does_not_hold_the_secret() -> None:
    digest = secret_hash(SECRET)
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    assert SECRET not in digest and SECRET.removeprefix(PAT_PREFIX) not in digest


def test_the_same_secret_under_the_same_key_always_hashes_the_same() -> None:
    assert secret_hash(SECRET) == secret_hash(SECRET)


def test_different_secrets_hash_differently() -> None:
    assert secret_hash("rga_one") != secret_hash("rga_two")


def test_the_hash_is_keyed_not_a_plain_sha256_of_the_secret() -> None:
    assert secret_hash(SECRET) != hashlib.sha256(SECRET.encode()).hexdigest()


def test_the_hash_changes_with_secret_key(settings: Settings) -> None:
    assert hashed_under(settings, "key-one") != hashed_under(settings, "key-two")


def test_the_hash_for_a_given_key_is_pinned_so_stored_credentials_survive_upgrades(settings: Settings) -> None:
    # Changing the pepper's derivation would silently invalidate every robot, token and refresh token.
    assert hashed_under(settings, "pinned-key") == "d50df7a37049442649792ec26762f66c0bec6fd7ef635c4f1b9320024bef1d0b"


def test_the_fallback_keys_do_not_change_the_hash_of_a_new_secret(settings: Settings) -> None:
    before = hashed_under(settings, "current")
    settings.SECRET_KEY_FALLBACKS = ["old"]
    assert secret_hash(SECRET) == before


# --- hash_candidates -----------------------------------------------------------------


def test_without_fallbacks_the_only_candidate_is_the_current_hash(settings: Settings) -> None:
    settings.SECRET_KEY_FALLBACKS = []
    assert hash_candidates(SECRET) == [secret_hash(SECRET)]


def test_candidates_list_the_current_key_first_then_each_fallback_in_order(settings: Settings) -> None:
    old, older = hashed_under(settings, "old"), hashed_under(settings, "older")
    current = hashed_under(settings, "current")
    settings.SECRET_KEY_FALLBACKS = ["old", "older"]
    assert hash_candidates(SECRET) == [current, old, older]


def test_candidates_under_different_keys_all_differ(settings: Settings) -> None:
    settings.SECRET_KEY = "current"
    settings.SECRET_KEY_FALLBACKS = ["old", "older", "oldest"]
    candidates = hash_candidates(SECRET)
    assert len(candidates) == 4 and len(set(candidates)) == 4


def test_a_hash_stored_under_the_old_key_is_found_after_rotation(settings: Settings) -> None:
    stored = hashed_under(settings, "before-rotation")
    settings.SECRET_KEY = "after-rotation"
    settings.SECRET_KEY_FALLBACKS = ["before-rotation"]
    assert stored in hash_candidates(SECRET)
    assert secret_hash(SECRET) != stored  # new secrets are hashed under the new key


def test_a_hash_stored_under_a_key_dropped_from_the_fallbacks_is_no_longer_found(settings: Settings) -> None:
    stored = hashed_under(settings, "retired")
    settings.SECRET_KEY = "current"
    settings.SECRET_KEY_FALLBACKS = ["other"]
    assert stored not in hash_candidates(SECRET)


def test_candidates_belong_to_the_secret_presented(settings: Settings) -> None:
    settings.SECRET_KEY_FALLBACKS = ["old"]
    assert not set(hash_candidates("rga_one")) & set(hash_candidates("rga_two"))
