"""``python -m bench.rewrap_bench`` (part of ``make bench``): how long ``rewrap_secrets`` takes after a key change.

Issue 16 asks for the time of ``manage.py rewrap_secrets`` at 2,000 robots and 5,000 personal access
tokens. Their secrets are keyed hashes (nothing to re-encrypt), so what the command moves are the
signing keys and the notification secrets; the robots and tokens are seeded all the same, so the
database is the size the issue names. For a throwaway SQLite file, and a throwaway PostgreSQL
database (``registryadmin_bench_rewrap``, created and dropped) when BENCH_PG_ADMIN_URL (default
postgres://postgres@127.0.0.1:5432/postgres) answers, the parent:

* migrates with KEY_ENCRYPTION_KEY=A and runs a child (``--seed``) that bulk-creates users, teams,
  robots and tokens, then makes the signing keys (rotated, so previous/current/next and retired
  ones) and the notification secrets of a few registries through the services;
* sets KEY_ENCRYPTION_KEY=B with A in KEY_ENCRYPTION_KEY_FALLBACKS and runs ``rewrap_secrets`` in a
  child (``--rewrap``) twice: the first run moves everything, the second (idempotent) moves nothing.
  Each run reports the command's own time (``call_command`` in the child) and the wall time of the
  whole process (Python and Django start-up included: what an operator waits for);
* checks with A removed that a dry run reads every row with B alone;
* then, to show the batches at work where a real install never goes, adds BENCH_REWRAP_MORE (2000)
  retired signing keys wrapped with A (``--grow``: one real key's PEM, bulk-created) and runs
  ``rewrap_secrets`` twice more.

Results: a table on stdout and bench/output/rewrap.json. Knobs: BENCH_REWRAP_ROBOTS (2000),
BENCH_REWRAP_TOKENS (5000), BENCH_REWRAP_REGISTRIES (5), BENCH_REWRAP_ROTATIONS (4),
BENCH_REWRAP_MORE (2000; 0 skips that part), BENCH_PG_ADMIN_URL.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "bench" / "output"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = "registryadmin_bench_rewrap"
A, B = "bench-key-encryption-key-A-0123456789abcdef", "bench-key-encryption-key-B-0123456789abcdef"
SIZE = {
    "robots": int(os.environ.get("BENCH_REWRAP_ROBOTS", "2000")),
    "tokens": int(os.environ.get("BENCH_REWRAP_TOKENS", "5000")),
    "registries": int(os.environ.get("BENCH_REWRAP_REGISTRIES", "5")),
    "rotations": int(os.environ.get("BENCH_REWRAP_ROTATIONS", "4")),
    "more": int(os.environ.get("BENCH_REWRAP_MORE", "2000")),
}
USERS, TEAMS = 100, 20


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the children (Django set up, on the database DATABASE_URL names) ---------------------------


def child_seed() -> dict[str, Any]:
    """Accounts in bulk, then keys and notification secrets through the services (wrapped with A)."""
    from django.utils import timezone

    from accounts import services
    from accounts.constants import PAT_PREFIX, ROBOT_SECRET_PREFIX
    from accounts.models import PersonalAccessToken, Robot, SigningKey, Team, User
    from accounts.registry.secrets import new_secret, secret_hash
    from audit.context import AuditContext

    started, now = time.perf_counter(), timezone.now()
    users = User.objects.bulk_create(User(username=f"user{n:03d}", password="!bench") for n in range(USERS))
    teams = Team.objects.bulk_create(Team(name=f"team{n:02d}") for n in range(TEAMS))
    Robot.objects.bulk_create(
        (
            Robot(team=teams[n % TEAMS], name=f"robot{n}", secret_hash=secret_hash(new_secret(ROBOT_SECRET_PREFIX)))
            for n in range(SIZE["robots"])
        ),
        batch_size=1000,
    )
    PersonalAccessToken.objects.bulk_create(
        (
            PersonalAccessToken(
                user=users[n % USERS], name=f"token{n}", secret_hash=secret_hash(new_secret(PAT_PREFIX)), created_at=now
            )
            for n in range(SIZE["tokens"])
        ),
        batch_size=1000,
    )
    context = AuditContext.system("bench")
    services.ensure_keys(context)
    for _ in range(SIZE["rotations"]):
        services.rotate_signing_key(context)
    for n in range(SIZE["registries"]):
        services.notification_secret(services.create_registry(f"registry{n}", context=context), context)
    return {
        "robots": Robot.objects.count(),
        "tokens": PersonalAccessToken.objects.count(),
        "signing_keys": SigningKey.objects.count(),
        "notification_secrets": SIZE["registries"],
        "seed_s": round(time.perf_counter() - started, 2),
    }


def child_grow(count: int) -> dict[str, Any]:
    """``count`` retired signing keys wrapped with the current key (A): rows for the batches to chew on."""
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import KeyState, SigningKey
    from registryadmin.keywrap import unwrap, wrap

    model, now = SigningKey.objects.get(state=KeyState.CURRENT), timezone.now()
    plain = unwrap(model.private_key)  # one real key's PEM; each row gets its own ciphertext of it
    rows = (
        SigningKey(
            kid=f"BENCH:{n:06d}",
            state=KeyState.RETIRED,
            private_key=wrap(plain),
            certificate=model.certificate,
            not_after=model.not_after,
            created_at=now - timedelta(days=90 + n),
            retired_at=now - timedelta(days=n),
        )
        for n in range(count)
    )
    SigningKey.objects.bulk_create(rows, batch_size=500)
    return {"signing_keys": SigningKey.objects.count()}


def child_rewrap(*args: str) -> dict[str, Any]:
    """``rewrap_secrets`` in this process: its own time, without the start-up."""
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    started = time.perf_counter()
    call_command("rewrap_secrets", *args, stdout=out, stderr=err)
    return {"command_s": round(time.perf_counter() - started, 3), "stdout": out.getvalue().splitlines()}


# --- the parent ------------------------------------------------------------------------------------


def _env(work: Path, database_url: str, **keys: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "TEST_", "KEY_ENCRYPTION_KEY"))
    }
    return env | {
        "DATA_DIR": str(work / "data"),
        "DATABASE_URL": database_url,
        "SECRET_KEY": "bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        "BOOTSTRAP_ON_MIGRATE": "false",
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "registryadmin.settings",
        **keys,
    }


def _child(env: dict[str, str], *args: str) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.rewrap_bench", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench.rewrap_bench {' '.join(args)} failed:\n{done.stdout}\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def measure(label: str, work: Path, database_url: str) -> dict[str, Any]:
    old = _env(work, database_url, KEY_ENCRYPTION_KEY=A)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=old, check=True)
    seeded, _ = _child(old, "--seed")
    _log(f"{label}: seeded {seeded}")
    wrapped = seeded["signing_keys"] + seeded["notification_secrets"]
    runs = _twice(label, work, database_url, wrapped, 0)
    if SIZE["more"]:
        # Wrapped with A again (B, which now wraps the real keys, only read): what the rotation will move.
        _child(
            _env(work, database_url, KEY_ENCRYPTION_KEY=A, KEY_ENCRYPTION_KEY_FALLBACKS=B), "--grow", str(SIZE["more"])
        )
        runs += _twice(label, work, database_url, SIZE["more"], wrapped)
    return {"database": label, "seeded": seeded, "runs": runs}


def _twice(label: str, work: Path, database_url: str, moved: int, current: int) -> list[dict[str, Any]]:
    """``rewrap_secrets`` after the change (``moved`` under A, ``current`` under B), then again; then A dropped."""
    rotating = _env(work, database_url, KEY_ENCRYPTION_KEY=B, KEY_ENCRYPTION_KEY_FALLBACKS=A)
    runs = []
    for name, expected in (("first", (moved, current)), ("second", (0, moved + current))):
        result, wall = _child(rotating, "--rewrap")
        counts = _counts(result)
        runs.append(
            {"run": name, "wrapped": moved + current, "command_s": result["command_s"], "wall_s": round(wall, 3)}
        )
        runs[-1] |= counts
        _log(f"{label}: {name} run of {moved + current}: {result['command_s']:.3f} s ({wall:.2f} s with start-up)")
        if (counts["rewrapped"], counts["current"], counts["unreadable"]) != (*expected, 0):
            raise SystemExit(f"{label}: {name} run: expected {expected} rewrapped/current, got {counts}")
    check, _ = _child(_env(work, database_url, KEY_ENCRYPTION_KEY=B), "--rewrap", "--dry-run")
    if _counts(check)["current"] != moved + current:
        raise SystemExit(f"{label}: with A dropped, B alone does not read every row: {check}")
    return runs


def _counts(result: dict[str, Any]) -> dict[str, int]:
    """Sum the per-kind lines ("signing keys: rewrapped 5, already current 0, unreadable 0")."""
    totals = {"rewrapped": 0, "current": 0, "unreadable": 0}
    for line in result["stdout"]:
        if ": rewrapped " in line or ": would rewrap " in line:
            numbers = [int(word.strip(",")) for word in line.split() if word.strip(",").isdigit()]
            for key, number in zip(totals, numbers, strict=True):
                totals[key] += number
    return totals


def _postgres(work: Path) -> dict[str, Any] | None:
    import psycopg

    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _log(f"PostgreSQL not reachable at {urlsplit(PG_ADMIN_URL).hostname}: skipped ({exc})")
        return None
    parts = urlsplit(PG_ADMIN_URL)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{PG_DB}", "", ""))
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_DB}"')
        try:
            return measure("postgresql", work / "pg", url)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)')


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        f"{'database':<10} {'robots':>6} {'tokens':>6} {'wrapped':>7} {'run':<6} {'rewrapped':>9} "
        f"{'current':>7} {'command':>8} {'wall':>6}"
    ]
    for r in results:
        seeded = r["seeded"]
        for run in r["runs"]:
            lines.append(
                f"{r['database']:<10} {seeded['robots']:>6} {seeded['tokens']:>6} {run['wrapped']:>7} {run['run']:<6} "
                f"{run['rewrapped']:>9} {run['current']:>7} {run['command_s']:>7.3f}s {run['wall_s']:>5.2f}s"
            )
    return "\n".join(lines)


def main() -> None:
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-rewrap-") as tmp:
        work = Path(tmp)
        results.append(measure("sqlite", work / "sqlite", f"sqlite:///{work / 'sqlite' / 'bench.sqlite3'}"))
        postgres = _postgres(work)
        if postgres is not None:
            results.append(postgres)
    print("rewrap_secrets after a KEY_ENCRYPTION_KEY change (command: in-process; wall: with start-up)")
    print(table(results))
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "rewrap.json").write_text(json.dumps({"size": SIZE, "results": results}, indent=2) + "\n")
    _log(f"done in {time.perf_counter() - started:.1f} s; bench/output/rewrap.json written")


def _child_main(args: list[str]) -> None:
    import django

    sys.path.insert(0, str(ROOT))
    django.setup()
    if args[0] == "--seed":
        result = child_seed()
    elif args[0] == "--grow":
        result = child_grow(int(args[1]))
    else:
        result = child_rewrap(*args[1:])
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        _child_main(sys.argv[1:])
    else:
        main()
