"""Tamper evidence: record MACs, the sealer, verify_audit and retention.

Tampering goes straight to the database with raw SQL, past the append-only guards,
the way someone with database access (but without AUDIT_HMAC_KEY) would.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import override_settings
from django.utils import timezone

from accounts import services
from accounts.models import User
from audit import chain, retention, tasks
from audit.context import AuditContext
from audit.models import (
    AuditHourly,
    AuditRecord,
    AuditRollup,
    AuditSeal,
    AuditSegment,
    AuditSegmentChain,
    AuditVerification,
    Kind,
)
from audit.services import record
from tests.conftest import REPO_ROOT, SYSTEM, make_user

pytestmark = pytest.mark.django_db

LAG = timedelta(seconds=settings.AUDIT_SEAL_LAG)
CLIENT = AuditContext(actor="alice", actor_id=7, ip="2001:db8::1", user_agent="docker/27.0", request_id="req-1")


@contextmanager
def clock(at: datetime) -> Iterator[None]:
    """Records written inside are dated ``at`` (the write path reads ``timezone.now``)."""
    with mock.patch.object(timezone, "now", return_value=at):
        yield


def ago(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)


def access(outcome: str = "granted", context: AuditContext = CLIENT, repository: str = "web/app") -> AuditRecord:
    actions = [{"type": "repository", "name": repository, "requested": ["pull"], "granted": ["pull"], "denied": []}]
    return record(Kind.ACCESS, outcome, context, registry="main", repository=repository, actions=actions)


def history(count: int = 5, at: datetime | None = None) -> list[AuditRecord]:
    """Access attempts a millisecond apart from yesterday noon (or ``at``): old enough for any sealer."""
    start = at or yesterday_noon()
    written = []
    for i in range(count):
        with clock(start + timedelta(milliseconds=i)):
            written.append(access("granted" if i % 2 else "denied"))
    return written


def yesterday_noon() -> datetime:
    """A time whose UTC day does not end within the next hours, whenever the test runs."""
    return (timezone.now() - timedelta(days=1)).replace(hour=12, minute=0, second=0, microsecond=0)


def sql(statement: str, params: list[Any] | tuple[Any, ...] = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def copy_row(record_id: int, **overrides: Any) -> int:
    """INSERT ... SELECT a record's row, with some columns replaced; returns the new id."""
    columns = [*chain.FROZEN_FIELDS, "mac"]
    quoted = [connection.ops.quote_name(column) for column in columns]
    select = ", ".join("%s" if column in overrides else name for column, name in zip(columns, quoted, strict=True))
    params = [overrides[column] for column in columns if column in overrides]
    sql(
        f"INSERT INTO audit_auditrecord ({', '.join(quoted)}) SELECT {select} FROM audit_auditrecord WHERE id = %s",
        [*params, record_id],
    )
    return AuditRecord.objects.order_by("-id").values_list("id", flat=True).first()


def verify_command() -> tuple[int, str]:
    """Run ``manage.py verify_audit`` in-process: (exit code, output)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("verify_audit", stdout=out, stderr=err)
    except SystemExit as exit_:
        return int(exit_.code or 0), out.getvalue() + err.getvalue()
    return 0, out.getvalue() + err.getvalue()


# --- The write path -----------------------------------------------------------------------


def test_a_record_carries_its_kind_and_utc_day_segment_and_a_mac_of_its_frozen_fields() -> None:
    with clock(datetime(2026, 11, 24, 23, 59, 59, 999999, tzinfo=UTC)):
        entry = access()
    assert entry.segment == "access:2026-11-24"
    assert len(entry.mac) == 64
    assert entry.mac == chain.record_mac(entry)


def test_the_write_path_makes_the_mac_without_an_extra_query(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(1):
        access()


def test_the_mac_matches_the_values_read_back_from_the_database() -> None:
    awkward = AuditContext(
        actor="é" * 300, actor_id=12, ip="2001:DB8:0:0:0:0:0:1", user_agent="ünïcödé 🐳", request_id="r" * 80
    )
    detail = {"floats": [2.0, 0.1, 1e16, 1.5e-7], 1: ("a", None), "nested": {"b": True, "a": [{}]}}
    record(Kind.ADMIN_CHANGE, "success", awkward, detail=detail)
    record(Kind.ACCESS, "denied", AuditContext(ip="::ffff:10.0.0.1"), actions=[{"requested": ["*"]}])
    record(Kind.SIGNIN, "failed", AuditContext(ip=""))
    for stored in AuditRecord.objects.all():
        assert chain.record_mac(stored) == stored.mac, stored.segment


def test_changing_any_frozen_field_changes_the_mac() -> None:
    entry = access()
    values = {name: getattr(entry, name) for name in chain.FROZEN_FIELDS}
    changes = {"outcome": "denied", "ip": "2001:db8::2", "actor_id": 8, "detail": {"x": 1}, "time": entry.time + LAG}
    for name, value in changes.items():
        assert chain.record_mac({**values, name: value}) != entry.mac, name


# --- Sealing ------------------------------------------------------------------------------


def test_records_written_through_the_services_verify_as_intact_once_sealed(alice: User, bob: User) -> None:
    team = services.create_team("web", context=SYSTEM)
    services.set_membership(team, alice, "maintainer", context=SYSTEM)
    access()
    total = AuditRecord.objects.count()
    now = timezone.now() + LAG + timedelta(seconds=1)
    assert chain.seal(now=now) == total
    result = chain.verify(now=now)
    assert result == chain.VerifyResult("intact", total)


def test_the_sealer_is_idempotent_and_seals_each_record_once() -> None:
    history(7)
    now = timezone.now()
    assert chain.seal(now=now, batch=3) == 7
    assert chain.seal(now=now) == 0
    assert sorted(AuditSeal.objects.values_list("record_id", flat=True)) == sorted(
        AuditRecord.objects.values_list("id", flat=True)
    )
    segment = AuditSegment.objects.get()
    assert segment.count == 7
    assert list(AuditSeal.objects.order_by("seq").values_list("seq", flat=True)) == list(range(1, 8))
    assert AuditRollup.objects.aggregate(n=Sum("count"))["n"] == 7


def test_records_younger_than_the_seal_lag_wait_and_the_lag_is_reported() -> None:
    written = timezone.now()
    with clock(written):
        access()
    assert chain.seal(now=written + LAG / 2) == 0
    assert chain.seal_lag(now=written + LAG / 2) == LAG / 2
    assert chain.seal(now=written + LAG) == 1
    assert chain.seal_lag(now=written + LAG) is None


def test_rollups_count_each_sealed_record_once_per_hour_kind_and_outcome() -> None:
    base = ago(days=1).replace(minute=10)
    for i, (hours, outcome) in enumerate(
        [(0, "granted"), (0, "denied"), (0, "granted"), (1, "granted"), (3, "denied")]
    ):
        with clock(base + timedelta(hours=hours, seconds=i)):
            access(outcome)
    with clock(base):
        record(Kind.SIGNIN, "success", CLIENT)
    now = timezone.now()
    chain.seal(now=now, batch=2)
    chain.seal(now=now)
    expected = Counter(
        (entry.time.replace(minute=0, second=0, microsecond=0), entry.kind, entry.outcome)
        for entry in AuditRecord.objects.all()
    )
    rollups = AuditRollup.objects.values_list("hour", "kind", "outcome").annotate(n=Sum("count"))
    assert {(hour, kind, outcome): n for hour, kind, outcome, n in rollups} == dict(expected)
    hourly = AuditHourly.objects.values_list("hour", "kind", "outcome").annotate(n=Sum("count"))
    assert {(hour, kind, outcome): n for hour, kind, outcome, n in hourly} == dict(expected)
    assert AuditHourly.objects.count() == len(expected)  # one coarse row per hour, kind, outcome, registry
    assert set(AuditRollup.objects.values_list("ip", "actor", "repository").distinct()) == {
        ("2001:db8::1", "alice", "web/app"),
        ("2001:db8::1", "alice", ""),
    }


@pytest.mark.django_db(transaction=True)
def test_two_sealers_running_at_once_seal_each_record_once() -> None:
    history(120)
    now, errors, sealed = timezone.now(), [], []
    start = threading.Barrier(2)

    def sealer() -> None:
        try:
            start.wait()
            sealed.append(chain.seal(now=now, batch=10))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sealer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(sealed) == 120
    assert AuditSeal.objects.count() == 120
    assert AuditRollup.objects.aggregate(n=Sum("count"))["n"] == 120
    assert chain.verify(now=now).outcome == "intact"


def test_a_record_committed_late_within_the_grace_period_is_still_sealed() -> None:
    noon = yesterday_noon()
    history(3, at=noon)
    chain.seal(now=noon + timedelta(minutes=2))
    history(1, at=noon - timedelta(minutes=2))  # its transaction committed only now
    assert chain.seal(now=noon + timedelta(minutes=3)) == 1


def test_a_record_committed_long_after_its_time_is_sealed_by_the_daily_verification() -> None:
    noon = yesterday_noon()
    history(3, at=noon)
    chain.seal(now=noon + timedelta(minutes=1))
    late = history(1, at=noon - timedelta(hours=2))[0]
    assert chain.seal(now=noon + timedelta(minutes=2)) == 0  # outside the sealer's window
    assert chain.verify(now=noon + timedelta(minutes=3)).outcome == "intact"
    assert AuditSeal.objects.filter(record_id=late.pk).exists()


def test_the_sealer_leaves_a_record_changed_before_sealing_for_verify_to_report() -> None:
    first, _ = history(2)
    sql("UPDATE audit_auditrecord SET outcome = 'forged' WHERE id = %s", [first.pk])
    assert chain.seal() == 1
    result = chain.verify()
    assert result.outcome == "tampered"
    assert result.record_id == first.pk
    assert f"record #{first.pk} was inserted or changed" in result.problem
    assert not AuditSeal.objects.filter(record_id=first.pk).exists()


# --- verify_audit -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_verify_audit_exits_0_and_stores_the_result_when_intact() -> None:
    history(4)
    code, output = verify_command()
    assert (code, output.strip()) == (0, "intact: 4 records checked")
    stored = AuditVerification.objects.get()
    assert (stored.outcome, stored.checked, stored.problem) == ("intact", 4, "")
    assert stored.finished_at >= stored.started_at


@pytest.mark.django_db(transaction=True)
def test_an_edited_row_makes_verify_audit_exit_1_naming_it() -> None:
    records = history(5)
    chain.seal()
    target = records[2]
    assert sql("UPDATE audit_auditrecord SET outcome = 'forged' WHERE id = %s", [target.pk]) == 1
    code, output = verify_command()
    assert code == 1
    assert f"record #{target.pk} (seq 3 of segment {target.segment}) was changed" in output
    stored = AuditVerification.objects.get()
    assert stored.outcome == "tampered" and f"#{target.pk}" in stored.problem


@pytest.mark.django_db(transaction=True)
def test_a_deleted_row_makes_verify_audit_exit_1_naming_it() -> None:
    records = history(5)
    chain.seal()
    target = records[1]
    assert sql("DELETE FROM audit_auditrecord WHERE id = %s", [target.pk]) == 1
    code, output = verify_command()
    assert code == 1
    assert f"record #{target.pk} (seq 2 of segment {target.segment}) was removed" in output


@pytest.mark.django_db(transaction=True)
def test_an_inserted_row_with_a_made_up_mac_makes_verify_audit_exit_1_naming_it() -> None:
    records = history(3)
    chain.seal()
    inserted = copy_row(records[0].pk, outcome="granted", mac="f" * 64)
    code, output = verify_command()
    assert code == 1
    assert f"record #{inserted} was inserted or changed outside the application" in output
    assert not AuditSeal.objects.filter(record_id=inserted).exists()


@pytest.mark.django_db(transaction=True)
def test_a_replayed_copy_of_a_valid_row_is_reported_as_inserted() -> None:
    records = history(3)
    chain.seal()
    replayed = copy_row(records[1].pk)
    assert AuditRecord.objects.get(pk=replayed).mac == records[1].mac  # a valid MAC, copied
    code, output = verify_command()
    assert code == 1
    assert f"record #{replayed} was inserted: it repeats record #{records[1].pk}" in output


def test_a_copy_made_before_the_original_was_sealed_is_not_sealed_either() -> None:
    original = history(2)[0]
    replayed = copy_row(original.pk)
    assert chain.seal() == 2
    result = chain.verify()
    assert (result.outcome, result.record_id) == ("tampered", replayed)


def test_cutting_the_tail_of_a_segment_and_rewinding_its_head_is_detected() -> None:
    records = history(4)
    chain.seal()
    last = records[-1]
    previous = AuditSeal.objects.get(segment=last.segment, seq=3)
    sql("DELETE FROM audit_auditrecord WHERE id = %s", [last.pk])
    sql("DELETE FROM audit_auditseal WHERE record_id = %s", [last.pk])
    sql("UPDATE audit_auditsegment SET count = 3, head = %s WHERE name = %s", [previous.chain, last.segment])
    result = chain.verify()
    assert result.outcome == "tampered"
    assert result.problem == f"the chain head of segment {last.segment} was altered"


def test_cutting_the_tail_of_a_segment_is_detected() -> None:
    records = history(4)
    chain.seal()
    sql("DELETE FROM audit_auditseal WHERE record_id = %s", [records[-1].pk])
    sql("DELETE FROM audit_auditrecord WHERE id = %s", [records[-1].pk])
    result = chain.verify()
    assert result.problem == f"1 record(s) at the end of segment {records[-1].segment} were removed (after seq 3)"


def test_removing_a_seal_row_is_detected_even_though_its_record_remains() -> None:
    records = history(4)
    chain.seal()
    sql("DELETE FROM audit_auditseal WHERE record_id = %s", [records[1].pk])
    result = chain.verify()
    assert result.outcome == "tampered"
    assert f"a record was removed before record #{records[2].pk}" in result.problem


def test_swapping_the_places_of_two_records_in_the_chain_is_detected() -> None:
    first, second = history(2)
    chain.seal()
    sql("UPDATE audit_auditseal SET record_id = -record_id WHERE record_id IN (%s, %s)", [first.pk, second.pk])
    sql("UPDATE audit_auditseal SET record_id = %s WHERE record_id = %s", [second.pk, -first.pk])
    sql("UPDATE audit_auditseal SET record_id = %s WHERE record_id = %s", [first.pk, -second.pk])
    result = chain.verify()
    assert (result.outcome, result.record_id) == ("tampered", second.pk)
    assert "does not fit its chain" in result.problem


def test_removing_the_seals_and_head_of_a_segment_is_detected() -> None:
    noon = yesterday_noon()
    entry = history(2, at=noon - timedelta(hours=1))[0]
    with clock(noon):
        record(Kind.SIGNIN, "success", CLIENT)
    chain.seal(now=noon + timedelta(minutes=1))
    sql("DELETE FROM audit_auditseal WHERE segment = %s", [entry.segment])
    sql("DELETE FROM audit_auditsegment WHERE name = %s", [entry.segment])
    result = chain.verify(now=noon + timedelta(minutes=2))
    assert (result.outcome, result.record_id) == ("tampered", entry.pk)
    assert "has no chain: its seals were removed" in result.problem


def test_the_first_problem_is_reported_in_segment_then_chain_order() -> None:
    early = history(3, at=ago(days=2))
    late = history(3, at=ago(days=1))
    chain.seal()
    sql("UPDATE audit_auditrecord SET actor = 'mallory' WHERE id IN (%s, %s)", [late[0].pk, early[2].pk])
    assert chain.verify().record_id == early[2].pk


def test_verify_audit_exits_2_without_a_key_and_stores_the_error() -> None:
    history(2)
    with override_settings(AUDIT_HMAC_KEY=""):
        code, output = verify_command()
    assert code == 2
    assert "could not run: ImproperlyConfigured: AUDIT_HMAC_KEY is not set" in output
    assert AuditVerification.objects.get().outcome == "error"


def test_verify_audit_exits_2_when_the_database_cannot_be_read(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "TEST_DATABASE_URL"}}
    env.update(
        DJANGO_SETTINGS_MODULE="registryadmin.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}",
        DATA_DIR=str(tmp_path / "data"),
        BOOTSTRAP_ON_MIGRATE="false",
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "verify_audit"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "could not run: OperationalError" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_verify_audit_in_its_own_process_exits_1_naming_the_changed_record(subprocess_env: dict[str, str]) -> None:
    records = history(3)
    chain.seal()
    sql("UPDATE audit_auditrecord SET repository = 'ops/secrets' WHERE id = %s", [records[0].pk])
    subprocess_env["AUDIT_HMAC_KEY"] = settings.AUDIT_HMAC_KEY
    done = subprocess.run(
        [sys.executable, "manage.py", "verify_audit"],
        cwd=REPO_ROOT,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert f"record #{records[0].pk} (seq 1 of segment {records[0].segment}) was changed" in done.stdout


def test_the_scheduled_tasks_seal_and_verify_and_record_their_runs() -> None:
    history(3)
    assert tasks.seal_audit() == 3
    assert tasks.verify_audit() == "intact"
    assert AuditVerification.objects.get().outcome == "intact"
    jobs = AuditRecord.objects.filter(kind=Kind.JOB).values_list("detail__job", flat=True)
    assert sorted(jobs) == ["seal_audit", "verify_audit"]


# --- The chain of segments ----------------------------------------------------------------


def days_of_history() -> list[str]:
    """Access attempts on each of the last three days and sign-ins on the middle one, sealed as they come.

    Returns the segment names in the order the sealer linked them.
    """
    for days in (3, 2, 1):
        at = yesterday_noon() - timedelta(days=days - 1)
        history(2, at=at)
        if days == 2:
            with clock(at + timedelta(seconds=1)):
                record(Kind.SIGNIN, "success", CLIENT)
        chain.seal(now=at + timedelta(minutes=1))
    return list(AuditSegment.objects.order_by("position").values_list("name", flat=True))


def delete_segment(name: str) -> None:
    """Remove one whole segment, its records, seals and head, as someone with database access would."""
    sql("DELETE FROM audit_auditseal WHERE segment = %s", [name])
    sql("DELETE FROM audit_auditrecord WHERE segment = %s", [name])
    sql("DELETE FROM audit_auditsegment WHERE name = %s", [name])


def test_appends_across_several_days_link_their_segments_in_order_and_verify_as_intact() -> None:
    names = days_of_history()
    day = [f"{(yesterday_noon() - timedelta(days=n)):%Y-%m-%d}" for n in (2, 1, 0)]
    assert names == [f"access:{day[0]}", f"access:{day[1]}", f"signin:{day[1]}", f"access:{day[2]}"]
    previous = list(AuditSegment.objects.order_by("position").values_list("position", "previous"))
    assert previous == [(1, ""), (2, names[0]), (3, names[1]), (4, names[2])]
    tip = AuditSegmentChain.objects.get()
    assert (tip.count, tip.segment) == (4, names[-1])
    assert chain.verify() == chain.VerifyResult("intact", 7)


@pytest.mark.django_db(transaction=True)
def test_deleting_a_whole_segment_makes_verify_audit_exit_1_naming_it() -> None:
    names = days_of_history()
    delete_segment(names[2])
    code, output = verify_command()
    assert code == 1
    assert f"segment {names[2]} was removed" in output
    assert AuditVerification.objects.get().problem == f"segment {names[2]} was removed"


def test_deleting_several_segments_names_the_last_of_them() -> None:
    names = days_of_history()
    delete_segment(names[0])
    delete_segment(names[1])
    assert chain.verify().problem == f"2 segments were removed, the last of them {names[1]}"


def test_deleting_the_newest_segment_is_detected_by_the_keyed_tip() -> None:
    names = days_of_history()
    delete_segment(names[-1])
    result = chain.verify()
    assert (result.outcome, result.problem) == ("tampered", f"segment {names[-1]} was removed")


def test_rewinding_the_tip_to_the_segment_before_the_deleted_one_is_detected() -> None:
    names = days_of_history()
    delete_segment(names[-1])
    before = AuditSegment.objects.get(name=names[-2])
    sql("UPDATE audit_auditsegmentchain SET count = 3, segment = %s, link = %s", [before.name, before.link])
    assert chain.verify().problem == "the head of the chain of segments was altered"


def test_deleting_the_newest_segment_and_the_tip_is_detected() -> None:
    names = days_of_history()
    delete_segment(names[-1])
    sql("DELETE FROM audit_auditsegmentchain")
    assert chain.verify().problem == "the head of the chain of segments was removed"


def test_renumbering_the_segments_after_a_deleted_one_is_detected() -> None:
    names = days_of_history()
    delete_segment(names[1])
    sql("UPDATE audit_auditsegment SET position = position - 1, previous = %s WHERE position = 3", [names[0]])
    assert chain.verify().problem == f"the chain of segments was altered at segment {names[2]}"


@pytest.mark.django_db(transaction=True)
def test_emptying_every_audit_table_but_the_tip_makes_verify_audit_exit_1() -> None:
    names = days_of_history()
    chain.verify_and_record()
    for table in ("auditseal", "auditrecord", "auditsegment", "auditrollup", "audithourly", "auditverification"):
        sql(f"DELETE FROM audit_{table}")
    code, output = verify_command()
    assert code == 1
    assert f"the audit log was emptied: 4 segments were removed, the last of them {names[-1]}" in output


def test_the_sealer_does_not_link_new_segments_onto_a_cut_chain() -> None:
    names = days_of_history()
    delete_segment(names[-1])
    history(1, at=timezone.now() - LAG * 2)  # today: a new segment
    assert chain.seal() == 1
    assert AuditSegment.objects.get(name=chain.segment_name(Kind.ACCESS, timezone.now() - LAG * 2)).position is None
    assert chain.verify().problem == f"segment {names[-1]} was removed"


def test_segments_from_before_the_chain_of_segments_are_linked_by_the_next_sealer_run() -> None:
    names = days_of_history()
    sql("DELETE FROM audit_auditsegmentchain")
    sql("UPDATE audit_auditsegment SET position = NULL, previous = '', link = ''")
    assert chain.verify().outcome == "intact"  # unlinked rows verify by their own chains
    history(1, at=timezone.now() - LAG * 2)
    chain.seal()
    linked = list(AuditSegment.objects.order_by("position").values_list("name", "position"))
    today = chain.segment_name(Kind.ACCESS, timezone.now() - LAG * 2)
    assert linked == [(name, i) for i, name in enumerate(sorted([*names, today]), start=1)]
    assert chain.verify() == chain.VerifyResult("intact", 8)


# --- Retention ----------------------------------------------------------------------------


def old_and_new_history() -> dict[str, list[AuditRecord]]:
    """Access attempts and admin changes from 100 days ago, and access attempts from today."""
    old_access = history(2, at=ago(days=100))
    with clock(ago(days=100)):
        make_user("erin")
    old_admin = list(AuditRecord.objects.filter(kind=Kind.ADMIN_CHANGE))
    recent = history(2)
    return {"old_access": old_access, "old_admin": old_admin, "recent": recent}


def test_retention_drops_expired_segments_and_the_remaining_chains_still_verify() -> None:
    written = old_and_new_history()
    chain.seal()
    dropped_name = written["old_access"][0].segment
    assert retention.apply() == 1
    assert not AuditRecord.objects.filter(segment=dropped_name).exists()
    assert not AuditSeal.objects.filter(segment=dropped_name).exists()
    assert not AuditRollup.objects.filter(kind=Kind.ACCESS, hour__lt=ago(days=99)).exists()
    segment = AuditSegment.objects.get(name=dropped_name)
    assert segment.dropped_at is not None and segment.count == 2
    assert AuditRecord.objects.filter(pk=written["old_admin"][0].pk).exists()  # admin changes: 7 years
    assert AuditRecord.objects.filter(kind=Kind.ACCESS).count() == 2
    assert chain.verify() == chain.VerifyResult("intact", AuditRecord.objects.count())
    assert retention.apply() == 0


def test_a_dropped_segment_keeps_its_place_in_the_chain_of_segments() -> None:
    old_and_new_history()
    chain.seal()
    linked_before = list(AuditSegment.objects.order_by("position").values_list("name", "position", "link"))
    assert retention.apply() == 1
    assert list(AuditSegment.objects.order_by("position").values_list("name", "position", "link")) == linked_before
    history(1, at=timezone.now() - LAG * 2)  # sealing continues on top of the dropped segment
    chain.seal()
    assert AuditSegmentChain.objects.get().count == len(linked_before) + 1
    assert chain.verify().outcome == "intact"


def test_deleting_the_row_a_dropped_segment_left_is_detected() -> None:
    written = old_and_new_history()
    retention.apply()
    name = written["old_access"][0].segment
    sql("DELETE FROM audit_auditsegment WHERE name = %s", [name])
    assert chain.verify().problem == f"segment {name} was removed"


@pytest.mark.django_db(transaction=True)
def test_purging_an_old_segment_leaves_verify_audit_exiting_0() -> None:
    old_and_new_history()
    assert retention.apply() == 1  # seals what it drops first
    code, output = verify_command()
    assert (code, output.strip()) == (0, f"intact: {AuditRecord.objects.count()} records checked")


def test_a_tampered_retention_checkpoint_is_detected() -> None:
    written = old_and_new_history()
    retention.apply()
    name = written["old_access"][0].segment
    sql("UPDATE audit_auditsegment SET count = 1 WHERE name = %s", [name])
    result = chain.verify()
    assert result.outcome == "tampered"
    assert result.problem == f"the retention checkpoint of segment {name} was altered"


def test_rows_restored_into_a_dropped_segment_are_reported_as_inserted() -> None:
    written = old_and_new_history()
    backup = list(AuditRecord.objects.filter(segment=written["old_access"][0].segment).values())
    retention.apply()
    for row in backup:
        AuditRecord.objects.create(**{**row, "id": None})
    result = chain.verify()
    assert result.outcome == "tampered"
    assert "after retention dropped it" in result.problem


def test_retention_keeps_a_segment_holding_refused_records() -> None:
    written = old_and_new_history()
    sql("UPDATE audit_auditrecord SET outcome = 'forged' WHERE id = %s", [written["old_access"][1].pk])
    assert retention.apply() == 0
    assert chain.verify().record_id == written["old_access"][1].pk


def test_retention_follows_each_class_and_never_drops_the_current_day() -> None:
    now = datetime(2026, 11, 24, 12, tzinfo=UTC)
    with override_settings(AUDIT_RETENTION_DAYS={"access": 1, "job": 3}):
        assert retention.is_expired("access:2026-11-22", now)
        assert not retention.is_expired("access:2026-11-23", now)
        assert not retention.is_expired("job:2026-11-22", now)
        assert not retention.is_expired("admin_change:2020-01-01", now)  # no retention set: kept
        assert not retention.is_expired("access:not-a-day", now)
