"""The backup benchmark (``make bench-backup``): how it reads the commands, its verdicts, and one tiny real run."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import backup_bench
from bench.backup_bench import Size, flags, mismatches, phases_from_stages, table
from tests.harness import in_ci

TINY = Size(users=12, teams=3, grants=40, robots=6, tokens=5, repositories=10, records=0)


def test_the_stage_lines_of_backup_split_its_wall_time_into_phases() -> None:
    stamped = [
        (1.0, "... reading the configuration"),
        (1.5, "... read 12 users"),
        (4.0, "... packing and encrypting"),
        (6.0, "... writing the file"),
        (6.25, "... verifying: reading the file back and restoring it into a scratch database"),
        (9.0, "verified: 117 rows, 9,050 bytes, sha256 ab"),
    ]
    assert phases_from_stages(stamped, 9.5) == {
        "startup": 1.0,
        "dump": 3.0,
        "pack_encrypt": 2.0,
        "write": 0.25,
        "verify": 2.75,
        "exit": 0.5,
    }


def test_a_stage_that_never_showed_leaves_its_phase_out() -> None:
    stamped = [(1.0, "... reading the configuration"), (3.0, "... packing and encrypting")]
    assert phases_from_stages(stamped, 4.0) == {"startup": 1.0, "dump": 2.0, "pack_encrypt": 1.0}


def test_it_names_every_model_whose_count_differs() -> None:
    expected = {"accounts.user": 14, "accounts.grant": 40, "accounts.team": 3}
    assert mismatches(expected, {"accounts.user": 14, "accounts.grant": 39}) == [
        "accounts.grant: found 39, expected 40",
        "accounts.team: found None, expected 3",
    ]
    assert mismatches(expected, dict(expected)) == []


def test_it_flags_steps_over_a_minute_or_over_the_memory_goal() -> None:
    summary = {
        "steps": {
            "backup": {"seconds": 12.0, "peak_rss_mb": 600.0},
            "restore --force (full B)": {"seconds": 61.0, "peak_rss_mb": 2000.0, "note": "replace"},
        }
    }
    assert flags(summary) == [
        "restore --force (full B): 61.0 s is over 60 s",
        "restore --force (full B): peak RSS 2000.0 MB is over 1536 MB",
    ]
    assert "replace" in table(summary)


def _postgres_or_skip() -> None:
    import psycopg

    try:
        psycopg.connect(backup_bench.PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is not reachable ({exc}); CI=true, so this is a failure, not a skip")
        pytest.skip(f"the backup benchmark needs PostgreSQL at {backup_bench.PG_ADMIN_URL}")


@pytest.mark.e2e
@pytest.mark.own_databases
def test_a_tiny_run_backs_up_restores_three_ways_and_finds_the_same_counts(tmp_path: Path) -> None:
    _postgres_or_skip()
    result = backup_bench.run(TINY, tmp_path, phases=False, label="smoke")
    assert result["counts"]["users"] == TINY.users + 2 and result["counts"]["grants"] == TINY.grants
    assert result["counts"]["memberships"] > 0 and result["counts"]["tokens"] == TINY.tokens
    assert result["file"]["bytes"] > 0 and result["rows"] == sum(result["counts_every_model"].values())
    backup = result["steps"]["backup"]
    assert set(backup["phases_s"]) == {"startup", "dump", "pack_encrypt", "write", "verify", "exit"}
    assert backup["said"].startswith("verified:") and backup["peak_rss_mb"] > 0
    assert result["steps"]["restore (fresh B)"]["said"].startswith("Restored")
    assert result["steps"]["restore --force (full B)"]["said"].startswith("Restored")
    assert "in_process" not in result
