"""Rotating AUDIT_HMAC_KEY: what the old key made still verifies while it is a fallback.

The old key is OLD, the new one NEW; records, seals and checkpoints are made under OLD first,
then NEW becomes AUDIT_HMAC_KEY with OLD in AUDIT_HMAC_KEY_FALLBACKS. Tampering goes straight to
the database, the way someone with database access but without any key would.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from audit import chain, retention
from audit.context import AuditContext
from audit.models import AuditRecord, AuditSeal, AuditSegment, AuditSegmentChain, AuditVerification, Kind
from audit.services import record, record_values
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.django_db

OLD = "old-audit-key-0123456789abcdefghijklmnopqrstuvwxyz"
NEW = "new-audit-key-zyxwvutsrqponmlkjihgfedcba9876543210"
OLD_ID, NEW_ID = chain.key_id(OLD.encode()), chain.key_id(NEW.encode())
LAG = timedelta(seconds=settings.AUDIT_SEAL_LAG)
CLIENT = AuditContext(actor="alice", actor_id=7, ip="2001:db8::1", user_agent="docker/27.0", request_id="req-1")


def old_key() -> Any:
    return override_settings(AUDIT_HMAC_KEY=OLD, AUDIT_HMAC_KEY_FALLBACKS=[])


def rotated(*fallbacks: str) -> Any:
    """NEW is the key; ``fallbacks`` (OLD, unless the test dropped it) only verify."""
    return override_settings(AUDIT_HMAC_KEY=NEW, AUDIT_HMAC_KEY_FALLBACKS=list(fallbacks))


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    with mock.patch.object(timezone, "now", return_value=at):
        yield


def noon_yesterday() -> datetime:
    return (timezone.now() - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)


def access(at: datetime, count: int = 2, kind: str = Kind.ACCESS) -> list[AuditRecord]:
    """``count`` records a millisecond apart from ``at``."""
    written = []
    for i in range(count):
        with clock(at + timedelta(milliseconds=i)):
            written.append(record(kind, "granted", CLIENT, registry="main", repository="web/app"))
    return written


def sql(statement: str, params: list[Any] | tuple[Any, ...] = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def verify_command() -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


def across_the_change() -> dict[str, list[AuditRecord]]:
    """Yesterday's segment: two records sealed under OLD, one written under OLD but sealed after the
    change, two written and sealed under NEW; the sealer's last pass runs under NEW."""
    noon = noon_yesterday()
    with old_key():
        before = access(noon)
        chain.seal(now=noon + timedelta(minutes=1))
        late = access(noon + timedelta(minutes=2), count=1)  # written just before the change
    with rotated(OLD):
        after = access(noon + timedelta(minutes=3))
        chain.seal(now=noon + timedelta(minutes=4))
    return {"before": before, "late": late, "after": after}


# --- Key ids ------------------------------------------------------------------------------


def test_key_ids_name_a_key_without_revealing_it() -> None:
    for key in (OLD.encode(), NEW.encode(), bytes(range(32)), b"k"):
        name = chain.key_id(key)
        assert len(name) == 16 and int(name, 16) >= 0
        assert name == chain.key_id(key)  # stable across processes: a pure function of the key
        for prefix_of in (key.hex(), key.decode("latin-1"), key.decode("latin-1").encode().hex()):
            assert not prefix_of.startswith(name) and name not in prefix_of
    assert OLD_ID != NEW_ID


def test_new_records_carry_the_current_keys_id_and_the_mac_is_made_under_that_key() -> None:
    with old_key():
        [made_before] = access(timezone.now(), count=1)
    with rotated(OLD):
        [made_after] = access(timezone.now(), count=1)
        values = record_values(Kind.SIGNIN, "success", CLIENT)
    assert (made_before.key_id, made_after.key_id, values["key_id"]) == (OLD_ID, NEW_ID, NEW_ID)
    assert made_before.mac == chain.record_mac(made_before, OLD.encode())
    assert made_after.mac == chain.record_mac(made_after, NEW.encode())
    assert made_after.mac != chain.record_mac(made_after, OLD.encode())


def test_the_write_path_works_out_the_key_id_once_per_key_not_per_record() -> None:
    with rotated(OLD), mock.patch.object(chain, "key_id", wraps=chain.key_id) as derive:
        chain._current.cache_clear()
        for _ in range(5):
            record_values(Kind.SIGNIN, "success", CLIENT)
    assert derive.call_count == 1


# --- Sealing and verifying across the change ----------------------------------------------


def test_sealing_continues_across_a_key_change_mid_segment_and_everything_verifies() -> None:
    written = across_the_change()
    segment = written["before"][0].segment
    seals = list(AuditSeal.objects.filter(segment=segment).order_by("seq").values_list("seq", "key_id"))
    assert seals == [(1, OLD_ID), (2, None), (3, NEW_ID), (4, None), (5, None)]
    assert AuditSegment.objects.get(name=segment).key_id == NEW_ID
    assert written["late"][0].key_id == OLD_ID  # made under OLD, sealed under NEW: valid, not forged
    with rotated(OLD):
        result = chain.verify()
        code, output = verify_command()
    assert result == chain.VerifyResult("intact", 5)
    assert result.keys == {OLD_ID, NEW_ID}
    assert code == 0
    assert output.splitlines() == [
        f"key ids still needed: {NEW_ID} (current), {OLD_ID} (fallback 1)",
        "intact: 5 records checked",
    ]


def test_the_sealer_makes_the_chain_of_segments_and_its_tip_again_under_the_new_key() -> None:
    with old_key():
        for days in (3, 2):
            at = noon_yesterday() - timedelta(days=days - 1)
            access(at)
            chain.seal(now=at + timedelta(minutes=1))
    assert set(AuditSegment.objects.values_list("link_key_id", flat=True)) == {OLD_ID}
    with rotated(OLD):
        assert chain.seal() == 0
        assert chain.verify().outcome == "intact"
    assert set(AuditSegment.objects.values_list("link_key_id", flat=True)) == {NEW_ID}
    assert AuditSegmentChain.objects.get().key_id == NEW_ID
    assert set(AuditSegment.objects.values_list("key_id", flat=True)) == {OLD_ID}  # heads go with their seals
    with rotated(OLD):
        assert chain.rekey() == 0  # nothing stale any more


def test_retention_drops_made_under_either_key_still_verify_and_the_old_key_can_go_with_the_records() -> None:
    with old_key():
        first = access(timezone.now() - timedelta(days=101))
        second = access(timezone.now() - timedelta(days=100))
        chain.seal()
        with override_settings(AUDIT_RETENTION_DAYS={"access": 100}):
            assert retention.apply() == 1  # dropped under OLD
    with rotated(OLD):
        access(timezone.now() - LAG * 2)
        assert retention.apply() == 1  # dropped under NEW, after the sealer made the old checkpoint again
        assert chain.verify().outcome == "intact"
    dropped = AuditSegment.objects.filter(name__in=[first[0].segment, second[0].segment])
    assert set(dropped.values_list("key_id", flat=True)) == {NEW_ID}
    with rotated():  # nothing OLD made is retained: it may go
        assert chain.verify() == chain.VerifyResult("intact", 2)
    with rotated(OLD):
        code, output = verify_command()
    assert code == 0
    assert f"no longer needed: {OLD_ID} (fallback 1)" in output


# --- Without the old key ------------------------------------------------------------------


def test_verify_audit_exits_2_naming_the_old_keys_id_once_it_is_no_longer_a_fallback() -> None:
    across_the_change()
    with rotated():
        code, output = verify_command()
    assert code == 2
    assert f"could not run: MissingKeyError: records made under key id {OLD_ID} (3 records" in output
    assert "put that key in AUDIT_HMAC_KEY_FALLBACKS" in output
    assert NEW_ID not in output
    assert AuditVerification.objects.get().outcome == "error"


def test_the_sealer_leaves_records_of_a_missing_key_unsealed_until_it_is_back() -> None:
    noon = noon_yesterday()
    with old_key():
        waiting = access(noon)
    with rotated():
        assert chain.seal(now=noon + timedelta(minutes=1)) == 0
        with pytest.raises(chain.MissingKeyError, match=OLD_ID):
            chain.verify()
    with rotated(OLD):
        assert chain.seal(now=noon + timedelta(minutes=2)) == len(waiting)
        assert chain.verify().outcome == "intact"


def test_a_record_changed_after_the_key_change_makes_verify_audit_exit_1_naming_it() -> None:
    written = across_the_change()
    for changed in (written["before"][1], written["after"][0]):
        sql("UPDATE audit_auditrecord SET repository = 'ops/secrets' WHERE id = %s", [changed.pk])
        with rotated(OLD):
            code, output = verify_command()
        assert code == 1
        assert f"record #{changed.pk} (seq" in output and "was changed" in output
        sql("UPDATE audit_auditrecord SET repository = 'web/app' WHERE id = %s", [changed.pk])


def test_tampering_is_reported_as_such_even_while_a_key_is_missing() -> None:
    written = across_the_change()
    changed = written["after"][1]
    sql("UPDATE audit_auditrecord SET outcome = 'denied' WHERE id = %s", [changed.pk])
    with rotated():
        code, output = verify_command()
    assert code == 1
    assert f"record #{changed.pk}" in output


def test_a_record_claiming_the_new_keys_id_but_maced_with_a_made_up_key_is_reported_forged() -> None:
    across_the_change()
    with rotated(OLD), clock(timezone.now() - LAG * 2):
        values = record_values(Kind.ADMIN_CHANGE, "success", CLIENT, detail={"action": "grant.create"})
    values["mac"] = chain.record_mac(values, b"made-up-key")
    assert values["key_id"] == NEW_ID
    AuditRecord.objects.create(**values)
    forged = AuditRecord.objects.latest("id")
    with rotated(OLD):
        code, output = verify_command()
    assert code == 1
    assert f"record #{forged.pk} was inserted or changed outside the application" in output


def test_naming_another_configured_key_on_a_record_is_a_change() -> None:
    written = across_the_change()
    relabelled = written["after"][0]
    sql("UPDATE audit_auditrecord SET key_id = %s WHERE id = %s", [OLD_ID, relabelled.pk])
    with rotated(OLD):
        result = chain.verify()
    assert (result.outcome, result.record_id) == ("tampered", relabelled.pk)


def test_records_from_before_key_ids_verify_under_whichever_configured_key_made_them() -> None:
    written = across_the_change()
    sql("UPDATE audit_auditrecord SET key_id = NULL")
    sql("UPDATE audit_auditseal SET key_id = NULL WHERE seq = 1")
    with rotated(OLD):
        assert chain.verify().outcome == "intact"
    sql("UPDATE audit_auditrecord SET actor = 'mallory' WHERE id = %s", [written["before"][0].pk])
    with rotated(OLD):
        assert chain.verify().record_id == written["before"][0].pk


def test_the_first_sealer_run_after_the_upgrade_makes_the_chain_of_segments_again_with_key_ids() -> None:
    with old_key():
        for days in (3, 2):
            at = noon_yesterday() - timedelta(days=days - 1)
            access(at)
            chain.seal(now=at + timedelta(minutes=1))
    sql("UPDATE audit_auditsegment SET key_id = '', link_key_id = ''")  # as the migration leaves them
    sql("UPDATE audit_auditsegmentchain SET key_id = ''")
    with old_key():
        assert chain.verify().outcome == "intact"
        assert chain.rekey() == 3  # two links and the tip
        assert chain.verify().outcome == "intact"
    assert set(AuditSegment.objects.values_list("link_key_id", flat=True)) == {OLD_ID}
    assert AuditSegmentChain.objects.get().key_id == OLD_ID


def test_a_cut_chain_of_segments_is_left_under_its_old_keys_for_verify_to_report() -> None:
    with old_key():
        for days in (3, 2):
            at = noon_yesterday() - timedelta(days=days - 1)
            access(at)
            chain.seal(now=at + timedelta(minutes=1))
    last = AuditSegment.objects.order_by("-position").first()
    sql("DELETE FROM audit_auditseal WHERE segment = %s", [last.name])
    sql("DELETE FROM audit_auditrecord WHERE segment = %s", [last.name])
    sql("DELETE FROM audit_auditsegment WHERE name = %s", [last.name])
    with rotated(OLD):
        assert chain.rekey() == 0
        assert chain.verify().problem == f"segment {last.name} was removed"
    assert AuditSegmentChain.objects.get().key_id == OLD_ID


# --- Settings -----------------------------------------------------------------------------

PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps(settings.AUDIT_HMAC_KEY_FALLBACKS))"
)


def load_settings(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIT_HMAC_KEY", "DATABASE_URL", "TEST_"))}
    clean.update(DJANGO_SETTINGS_MODULE="registryadmin.settings", DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_fallback_keys_come_comma_separated_or_one_a_line_from_a_file(tmp_path: Path) -> None:
    listed = load_settings(tmp_path, AUDIT_HMAC_KEY_FALLBACKS=f"{OLD}, {NEW}")
    assert json.loads(listed.stdout) == [OLD, NEW], listed.stderr
    keys = tmp_path / "fallbacks"
    keys.write_text(f"{OLD}\n\n{NEW}\n")
    from_file = load_settings(tmp_path, AUDIT_HMAC_KEY_FALLBACKS_FILE=str(keys))
    assert json.loads(from_file.stdout) == [OLD, NEW], from_file.stderr


def test_an_empty_fallback_key_stops_start_up_by_name_without_printing_any_key(tmp_path: Path) -> None:
    # An empty key is below what AUDIT_HMAC_KEY accepts (any non-empty key).
    refused = load_settings(tmp_path, AUDIT_HMAC_KEY_FALLBACKS=f"{OLD},,{NEW}")
    assert refused.returncode != 0
    assert "ImproperlyConfigured: AUDIT_HMAC_KEY_FALLBACKS: entry 2" in refused.stderr
    assert "empty" in refused.stderr
    assert OLD not in refused.stderr and NEW not in refused.stderr


@pytest.mark.django_db(transaction=True)
def test_verify_audit_in_its_own_process_reads_the_fallbacks_file(
    subprocess_env: dict[str, str], tmp_path: Path
) -> None:
    across_the_change()
    keys = tmp_path / "fallbacks"
    keys.write_text(f"{OLD}\n")
    subprocess_env["AUDIT_HMAC_KEY"] = NEW
    runs = {}
    for name, extra in (("kept", {"AUDIT_HMAC_KEY_FALLBACKS_FILE": str(keys)}), ("dropped", {})):
        runs[name] = subprocess.run(
            [sys.executable, "manage.py", "verify_audit"],
            cwd=REPO_ROOT,
            env={**subprocess_env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert runs["kept"].returncode == 0, runs["kept"].stderr
    assert runs["kept"].stdout.splitlines()[-1] == "intact: 5 records checked"
    assert runs["dropped"].returncode == 2
    assert f"key id {OLD_ID}" in runs["dropped"].stderr
    assert OLD not in runs["dropped"].stderr + runs["dropped"].stdout
