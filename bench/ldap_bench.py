"""What directory (LDAP) users cost: token throughput with and without the bind cache, and the full sync.

Everything runs on loopback against a real slapd (tests/harness/slapd.py) loaded with 5,000 people
in 200 groups (person ``i`` in ``group{i % 200}``), every group mapped to its own team with a
``bench/*`` write grant, in a throwaway DATA_DIR with the embedded default (SQLite, database cache).

1. The full sync, ``manage.py sync_ldap`` in a subprocess, wall time and the command's own figure:
   the dry run on the fresh database (would create 5,000 accounts and 5,000 memberships, rolls back),
   the first run (does it), the second run (nothing to change). Each run's change count is checked.
2. Tokens/s at ``/auth/token`` (``repository:bench/app:pull,push``) through gunicorn (2 workers)
   with wrk, after the sync, for a directory user with the bind cache on (``LDAP_BIND_CACHE_TTL=60``,
   the default), with it off (``LDAP_BIND_CACHE_TTL=0``: every request binds to slapd, reads the
   person's groups and applies them), and for a local user in the same database. Rounds alternate
   on / off / local (``BENCH_LDAP_ROUNDS``, default 3, ``BENCH_LDAP_DURATION`` each, default 5s)
   and the medians are reported, so drift hits all three alike. Before each round one request checks
   the answer is a 200 whose token grants pull and push; a round with any non-2xx answer fails.

``make bench`` runs this after the limits benchmark; ``python -m bench.ldap_bench`` alone. The
figures are printed as a summary, written to bench/output/ldap.json, and printed last as one JSON line.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import __main__ as token_bench  # noqa: E402
from bench import limits_bench  # noqa: E402
from tests.directory import ldap_environment  # noqa: E402
from tests.harness.slapd import Slapd, find_slapd  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_LDAP_ROUNDS", "3"))
DURATION = os.environ.get("BENCH_LDAP_DURATION", "5s")
PEOPLE = 5000
GROUPS = 200
DIRECTORY_PASSWORD = "directory-bench-pw-123"
DIRECTORY_USER = "user00000"  # in group0000, mapped to team dir-group0000
MODES = ("cache_on", "cache_off", "local")

# Runs in manage.py shell after token_bench.SETUP: one team per directory group, each with the grant.
TEAMS = """
from accounts import services
from audit.context import AuditContext
ctx = AuditContext.system("bench")
for i in range({groups}):
    cn = f"group{{i:04d}}"
    team = services.create_team(f"dir-{{cn}}", context=ctx)
    services.directory.set_directory_groups(team, [(f"cn={{cn}},{groups_base}", "member")], context=ctx)
    services.create_grant(team, "bench/*", "write", context=ctx)
"""

SUMMARY = re.compile(r"(\d+) people, (\d+) mapped groups: (?:would change|changed) (\d+) \(([\d.]+) s\)")


def sync(env: dict[str, str], *args: str) -> dict[str, object]:
    """One ``manage.py sync_ldap`` in a subprocess: wall seconds, the command's own seconds, its changes."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "manage.py", "sync_ldap", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if result.returncode:
        raise SystemExit(f"sync_ldap {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    match = SUMMARY.search(result.stdout)
    if match is None:
        raise SystemExit(f"sync_ldap {' '.join(args)}: no summary line in its output:\n{result.stdout[-3000:]}")
    people, groups, changes, own = match.groups()
    lines = [line for line in result.stdout.splitlines() if line[:2] in ("+ ", "- ", "~ ")]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    return {
        "wall_s": round(wall, 2),
        "command_s": float(own),
        "people": int(people),
        "groups": int(groups),
        "changes": int(changes),
        "new_users": sum(1 for line in lines if "(new directory user " in line),
        "new_memberships": sum(1 for line in lines if line.startswith("+ ") and ", from " in line),
        "warnings": warnings[:10],
        "warning_count": len(warnings),
    }


def bench_sync(env: dict[str, str]) -> dict[str, object]:
    runs = {
        "dry_run_fresh": sync(env, "--dry-run"),
        "first": sync(env),
        "second": sync(env),
    }
    expected = {"dry_run_fresh": PEOPLE * 2, "first": PEOPLE * 2, "second": 0}
    for name, want in expected.items():
        run = runs[name]
        if run["changes"] != want or run["warning_count"] or run["people"] != PEOPLE or run["groups"] != GROUPS:
            raise SystemExit(f"sync {name}: expected {want} changes for {PEOPLE} people in {GROUPS} groups: {run}")
    return runs


def _token_grants_push(body: bytes) -> bool:
    token = json.loads(body)["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    actions = {action for entry in claims.get("access", []) for action in entry.get("actions", [])}
    return {"pull", "push"} <= actions


def _round(env: dict[str, str], work: Path, mode: str, creds: tuple[str, str]) -> dict[str, float]:
    server, port = limits_bench._serve(env, work, f"ldap-{mode}")
    try:
        _, status, body = limits_bench._ask(port, *creds)
        if status != 200 or not _token_grants_push(body):
            raise SystemExit(f"{mode}: {creds[0]} got {status} {body[:300]!r}, not a pull,push token")
        url = f"http://127.0.0.1:{port}/auth/token?service=registry&scope={limits_bench.SCOPE}"
        token_bench.wrk(url, work, ":".join(creds))  # warm-up: workers, connections, the bind cache
        result = token_bench.wrk(url, work, ":".join(creds))
        if result["errors"]:
            raise SystemExit(f"{mode}: {result['errors']} non-2xx answers under load (see {work}/ldap-{mode}.log)")
        return result
    finally:
        server.terminate()
        server.wait()


def bench_tokens(env: dict[str, str], work: Path) -> dict[str, object]:
    """Median tokens/s and latency over rounds alternating cache on / cache off / local user."""
    setups = {
        "cache_on": (env | {"LDAP_BIND_CACHE_TTL": "60"}, (DIRECTORY_USER, DIRECTORY_PASSWORD)),
        "cache_off": (env | {"LDAP_BIND_CACHE_TTL": "0"}, (DIRECTORY_USER, DIRECTORY_PASSWORD)),
        "local": (env, ("bench", token_bench.PASSWORD)),
    }
    rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(ROUNDS):
        for mode in MODES:
            mode_env, creds = setups[mode]
            rounds[mode].append(_round(mode_env, work, mode, creds))
    results: dict[str, object] = {}
    for mode, runs in rounds.items():
        results[mode] = {
            "tokens_per_s": round(statistics.median(r["tokens_per_s"] for r in runs), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
            "rounds_tokens_per_s": [r["tokens_per_s"] for r in runs],
        }
    on, off = results["cache_on"]["tokens_per_s"], results["cache_off"]["tokens_per_s"]  # type: ignore[index]
    results["cache_speedup"] = round(on / off, 2) if off else None
    return results


def summary(results: dict[str, object]) -> str:
    tokens, runs = results["tokens"], results["sync"]
    lines = [
        f"LDAP benchmark: {PEOPLE:,} people in {GROUPS} groups, all mapped; SQLite; gunicorn 2 workers; "
        f"wrk -t2 -c16 {DURATION} x {ROUNDS} round(s); {os.cpu_count()} CPUs",
        f"  directory loaded in {results['populate_s']} s",
        "  tokens/s at /auth/token (median)      tokens/s    p50 ms    p99 ms",
    ]
    labels = {
        "cache_on": "directory user, bind cache on (60 s)",
        "cache_off": "directory user, bind cache off",
        "local": "local user",
    }
    for mode in MODES:
        row = tokens[mode]
        lines.append(f"    {labels[mode]:<36}{row['tokens_per_s']:>10.1f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}")
    lines.append(f"    bind cache speed-up: x{tokens['cache_speedup']}")
    lines.append("  manage.py sync_ldap                    wall s  command s   changes")
    for name, label in (
        ("dry_run_fresh", "dry run (fresh database)"),
        ("first", "first run (creates all)"),
        ("second", "second run (nothing to do)"),
    ):
        run = runs[name]
        lines.append(f"    {label:<34}{run['wall_s']:>9.2f}{run['command_s']:>11.2f}{run['changes']:>10}")
    return "\n".join(lines)


def run(work: Path, server: Slapd) -> dict[str, object]:
    population = server.populate(people=PEOPLE, groups=GROUPS, password=DIRECTORY_PASSWORD)
    if DIRECTORY_USER not in population.groups["group0000"]:
        raise SystemExit(f"{DIRECTORY_USER} is not in group0000: the harness's populate() changed")
    env = limits_bench._app(work, f"sqlite:///{work / 'bench.sqlite3'}", None) | ldap_environment(server)
    teams = TEAMS.format(groups=GROUPS, groups_base=server.groups_base)
    token_bench.run([sys.executable, "manage.py", "shell", "-v0", "-c", teams], env)
    return {
        "people": PEOPLE,
        "groups": GROUPS,
        "populate_s": round(population.seconds, 2),
        "sync": bench_sync(env),
        "tokens": bench_tokens(env, work),
    }


def main() -> None:
    for tool, found in (("wrk", shutil.which("wrk")), ("slapd", find_slapd())):
        if not found:
            sys.exit(f"the LDAP bench needs {tool}: apt-get install wrk slapd ldap-utils")
    token_bench.DURATION = DURATION  # wrk() reads it at each call
    work = Path(tempfile.mkdtemp(prefix="registryadmin-ldap-bench-"))
    with Slapd(workdir=work / "slapd") as server:
        results = run(work, server)
    out = ROOT / "bench" / "output"
    out.mkdir(exist_ok=True)
    (out / "ldap.json").write_text(json.dumps(results, indent=2))
    print(summary(results))
    print(json.dumps(results))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
