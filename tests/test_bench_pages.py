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
