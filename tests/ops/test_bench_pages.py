"""The dashboard page benchmark (``make bench-pages``): its population, its verdicts, and one tiny real run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from bench import pages_bench
from bench.pages_bench import PAGES, Size, compare, table
from tests.harness import in_ci

TINY = Size(users=12, teams=3, grants=40, robots=6, tokens=5, repositories=10, records=300)


def page(label: str, **figures: object) -> dict[str, object]:
    base = {"label": label, "persona": "admin", "url": "/", "available": True, "status": 200, "bytes": 2048}
    return {**base, "median_ms": 5.0, "p95_ms": 8.0, "queries": 4, **figures}


def test_it_flags_slow_pages_and_query_counts_that_grew_with_the_seed() -> None:
    full = [
        page("fast"),
        page("slow", median_ms=51.0, p95_ms=70.0),
        page("spiky", p95_ms=60.0),
        page("grows", queries=9),
        page("stub", available=False, status=404, error=""),
    ]
    small = [page("fast"), page("slow"), page("spiky"), page("grows", queries=5), page("stub")]
    flags = {row["label"]: row["flags"] for row in compare(full, small)}
    assert flags == {
        "fast": [],
        "slow": ["OVER 50 ms"],
        "spiky": ["p95 over 50 ms"],
        "grows": ["QUERIES GREW"],
        "stub": [],
    }


def test_the_table_shows_both_query_counts_and_reports_missing_pages_as_not_available() -> None:
    rows = compare([page("grows", queries=9), page("stub", available=False, status=500, error="boom")], None)
    text = table(rows)
    assert "-/9" in text
    assert "stub" in text and "not available" in text


def test_a_url_name_that_does_not_exist_yet_gives_no_url() -> None:
    assert pages_bench.page_url("nothing:here", {}, {}, {}) is None
    assert pages_bench.page_url("access:user", {"username": "{plain}"}, {"q": "a b"}, {"plain": "bob"}) == (
        "/access/user/bob?q=a+b"
    )


def test_the_population_has_distinct_grants_unique_robots_and_a_lead_first_in_each_team() -> None:
    size = Size(users=300, teams=150, grants=0, robots=1200, tokens=0, repositories=2500, records=0)
    teams = pages_bench.team_names(size.teams)
    shapes = pages_bench.user_grant_shapes(size, teams, 2000, random.Random(1))
    assert len(shapes) == 2000
    assert len({(s["user"], s["pattern"], s["registry"]) for s in shapes}) == 2000
    robots = pages_bench.robot_names(size.robots, teams)
    assert len(set(robots)) == size.robots
    assert ("web", "bot0") in robots and (None, "deploy199") in robots  # the audit bench's actors exist
    members = pages_bench.team_members(size, random.Random(1))
    assert members[0][:2] == [1, 7] and len(members[0]) == 200 and members[1][0] == 1
    assert all(len(set(team)) == len(team) for team in members)
    assert len(set(pages_bench.repository_names(size.repositories, teams))) == size.repositories


def _postgres_or_skip() -> None:
    import psycopg

    try:
        psycopg.connect(pages_bench.PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        if in_ci():
            pytest.fail(f"PostgreSQL is not reachable ({exc}); CI=true, so this is a failure, not a skip")
        pytest.skip(f"the page benchmark needs PostgreSQL at {pages_bench.PG_ADMIN_URL}")


@pytest.mark.e2e
@pytest.mark.own_databases
def test_a_tiny_run_seeds_everything_and_measures_every_page(tmp_path: Path) -> None:
    _postgres_or_skip()
    result = pages_bench.run_seed("smoke", TINY, tmp_path, runs=2, warmups=1)
    counts = result["seed"]["counts"]
    assert counts["users"] == TINY.users + 2 and counts["teams"] == TINY.teams and counts["grants"] == TINY.grants
    assert result["seed"]["audit"]["rows"] == TINY.records
    pages = {row["label"]: row for row in result["pages"]}
    assert list(pages) == [label for label, *_ in PAGES]
    home = pages["home (admin)"]
    assert home["available"] and home["status"] == 200 and home["queries"] > 0 and home["runs"] == 2
    assert pages["audit record"]["url"].startswith("/audit/")


def test_only_measures_the_pages_whose_label_holds_a_word() -> None:
    labels = [label for label, *_ in pages_bench.selected_pages(["teams", "grants filtered"])]
    assert labels == ["teams list", "grants filtered"]
    assert len(pages_bench.selected_pages([])) == len(PAGES)


def test_a_kept_seed_writes_the_environment_to_reach_it(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/registryadmin_bench_pages_full",
        "DATA_DIR": "/d",
        "SECRET_KEY": "s",
        "AUDIT_HMAC_KEY": "h",
        "STATIC_ROOT": "/st",
        "DJANGO_SETTINGS_MODULE": "registryadmin.settings",
        "PATH": "/not/written",
    }
    pages_bench._write_env(tmp_path / "full" / "env", env)
    lines = (tmp_path / "full" / "env").read_text().splitlines()
    assert "DATABASE_URL=postgres://postgres@127.0.0.1:5432/registryadmin_bench_pages_full" in lines
    assert "LOG_LEVEL=WARNING" in lines and not any(line.startswith("PATH=") for line in lines)


@pytest.mark.e2e
@pytest.mark.own_databases
def test_a_kept_seed_is_measured_again_without_seeding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psycopg

    _postgres_or_skip()
    monkeypatch.setattr(pages_bench, "KEEP", True)
    monkeypatch.setattr(pages_bench, "KEPT", tmp_path / "kept")
    monkeypatch.setattr(pages_bench, "ONLY", ["teams list"])  # the parent's value; the child reads its own env
    monkeypatch.setenv("BENCH_PAGES_ONLY", "teams list")
    database = f"{pages_bench.PG_DB}_keptsmoke"
    try:
        first = pages_bench.run_seed("keptsmoke", TINY, tmp_path, runs=1, warmups=1)
        seeded = (tmp_path / "kept" / "keptsmoke" / "seeded.json").read_text()
        kept_url = pages_bench.PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{database}"
        with psycopg.connect(kept_url, autocommit=True) as kept:
            kept.execute("INSERT INTO accounts_team (name, description, created_at) VALUES ('marker', '', now())")
        again = pages_bench.run_seed("keptsmoke", TINY, tmp_path, runs=1, warmups=1)
        with psycopg.connect(kept_url, autocommit=True) as kept:
            assert kept.execute("SELECT count(*) FROM accounts_team WHERE name = 'marker'").fetchone() == (1,)
        assert [row["label"] for row in again["pages"]] == ["teams list"] and again["pages"][0]["status"] == 200
        assert again["seed"] == first["seed"]  # read back, not seeded again
        assert (tmp_path / "kept" / "keptsmoke" / "seeded.json").read_text() == seeded
        assert "DATABASE_URL=" in (tmp_path / "kept" / "keptsmoke" / "env").read_text()
    finally:
        with psycopg.connect(pages_bench.PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
