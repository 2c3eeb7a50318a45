"""``python -m bench.backup_bench`` (``make bench-backup``): time and size of a backup and of its restore at scale.

Issue 17's closing note gives "the time and size of a backup and of a restore at 10k users, 1k teams
and 50k grants". The parent creates two throwaway PostgreSQL databases (dropped at the end):

* A, the old host (``registryadmin_bench_backup_full_a``): migrated, then a child (``--child seed``)
  seeds it with ``bench.pages_bench.seed_accounts`` (users, teams with memberships, grants,
  robots, personal access tokens, repositories, 2 registries; no audit records, a backup leaves them
  out), gives every user a password hash and an htpasswd hash of real length and alphabet (random:
  they compress as real ones do), adds a registry in htpasswd mode (so the file is backed up), makes
  the signing keys and the notification secrets, and counts every model the backup carries;
* B, the new host (``registryadmin_bench_backup_full_b``): another SECRET_KEY and KEY_ENCRYPTION_KEY,
  migrated with the bootstrap on, as a fresh install is (its admin and default registry).

Then, each a ``manage.py`` process timed from the outside (wall time; peak RSS from ``os.wait4``,
the process's own ``ru_maxrss``):

1. ``backup --output-dir DIR -v 2`` on A: its stage lines, timestamped as they arrive, split the wall
   time into start-up, dump, pack + encrypt, write, verify (read back, scratch SQLite migrate + load,
   count) and exit; the file's size and the row count it reports;
2. ``restore_backup FILE --dry-run`` on B (read + plan), ``restore_backup FILE --noinput`` on B (the
   fresh-install path), then B's counts of every model must equal A's (and each id sequence must be
   past its table's largest id), else the bench fails;
3. ``restore_backup FILE --noinput --force`` on the now populated B (the replace path: every row
   deleted, then written again), and the counts checked again;
4. ``verify_backup FILE`` on B (the scratch restore alone).

With BENCH_BACKUP_PHASES (1), two more children time the same code in-process, its functions
wrapped with timers: ``backup`` on A (dump, pack, encrypt, write, read back, scratch migrate,
scratch load) and ``restore_backup --force`` on B (read, plan with its dump of B, clear, load,
sequences, peppers). Results: a table on stdout and bench/output/backup.json (ignored by git).

Knobs: BENCH_BACKUP_USERS (10000), BENCH_BACKUP_TEAMS (1000), BENCH_BACKUP_GRANTS (50000),
BENCH_BACKUP_ROBOTS (2000), BENCH_BACKUP_TOKENS (5000), BENCH_BACKUP_REPOSITORIES (5000),
BENCH_BACKUP_PHASES (1; 0 skips the in-process children), BENCH_BACKUP_PROFILE (0; 1 runs those
children under cProfile and writes bench/output/backup_<step>.prof and the top functions),
BENCH_PG_ADMIN_URL.
"""

from __future__ import annotations

import cProfile
import io
import itertools
import json
import os
import pstats
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import audit_bench, pages_bench
from bench.audit_bench import PG_ADMIN_URL, ROOT, _log
from bench.pages_bench import Size

OUTPUT = ROOT / "bench" / "output"
PG_DB = "registryadmin_bench_backup"
PASSPHRASE = "bench backup passphrase: correct horse battery staple"
KEYS = {  # (SECRET_KEY, KEY_ENCRYPTION_KEY) of the old host and of the new one
    "a": ("bench-backup-secret-key-A-0123456789-abcdefghijklmnopqrstuvwxyz", "bench-backup-kek-A-0123456789abcdef"),
    "b": ("bench-backup-secret-key-B-0123456789-abcdefghijklmnopqrstuvwxyz", "bench-backup-kek-B-0123456789abcdef"),
}
# What the issue names, by the backup's model labels; every other model is compared too.
NAMED = {
    "users": "accounts.user",
    "teams": "accounts.team",
    "memberships": "accounts.membership",
    "grants": "accounts.grant",
    "robots": "accounts.robot",
    "tokens": "accounts.personalaccesstoken",
}
# The stages ``manage.py backup -v 2`` prints, and the phase each one starts.
STAGES = (
    ("reading the configuration", "dump"),
    ("packing and encrypting", "pack_encrypt"),
    ("writing the file", "write"),
    ("verifying", "verify"),
    ("verified:", "exit"),
)
GOAL_SECONDS, GOAL_RSS_MB = 60.0, 1536.0


def _knob(name: str, default: int) -> int:
    return int(os.environ.get(f"BENCH_BACKUP_{name}", str(default)))


FULL = Size(
    users=_knob("USERS", 10_000),
    teams=_knob("TEAMS", 1_000),
    grants=_knob("GRANTS", 50_000),
    robots=_knob("ROBOTS", 2_000),
    tokens=_knob("TOKENS", 5_000),
    repositories=_knob("REPOSITORIES", 5_000),
    records=0,  # the audit log is not in a backup
)
PHASES = bool(_knob("PHASES", 1))
PROFILE = bool(_knob("PROFILE", 0))


# --- pure: reading what the processes said ------------------------------------------------------


def phases_from_stages(stamped: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds per phase of ``backup -v 2`` from its (seconds since start, stderr line) pairs.

    A phase runs from its stage line to the next phase's; "startup" is before the first, "exit"
    after the final "verified:" line. A stage that never showed leaves its phase out.
    """
    starts: list[tuple[float, str]] = [(0.0, "startup")]
    for at, line in stamped:
        text = line.removeprefix("... ").strip()
        for prefix, phase in STAGES:
            if text.startswith(prefix) and phase not in {name for _, name in starts}:
                starts.append((at, phase))
    starts.append((total, ""))
    return {phase: round(end - at, 2) for (at, phase), (end, _) in itertools.pairwise(starts)}


def mismatches(expected: dict[str, int], found: dict[str, int]) -> list[str]:
    """Every model whose count differs, as "label: found N, expected M"."""
    return [
        f"{label}: found {found.get(label)}, expected {count}"
        for label, count in sorted(expected.items())
        if found.get(label) != count
    ]


def flags(summary: dict[str, Any]) -> list[str]:
    """The steps over GOAL_SECONDS or GOAL_RSS_MB: the ones worth profiling."""
    out = []
    for name, step in summary["steps"].items():
        if step["seconds"] > GOAL_SECONDS:
            out.append(f"{name}: {step['seconds']} s is over {GOAL_SECONDS:.0f} s")
        if step["peak_rss_mb"] > GOAL_RSS_MB:
            out.append(f"{name}: peak RSS {step['peak_rss_mb']} MB is over {GOAL_RSS_MB:.0f} MB")
    return out


def table(summary: dict[str, Any]) -> str:
    lines = [f"{'step':<28} {'seconds':>8} {'peak RSS MB':>12}  notes"]
    for name, step in summary["steps"].items():
        lines.append(f"{name:<28} {step['seconds']:>8.1f} {step['peak_rss_mb']:>12.1f}  {step.get('note', '')}")
    return "\n".join(lines)


# --- children (Django set up on the database DATABASE_URL names) --------------------------------


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def child_seed(size: Size) -> dict[str, Any]:
    """Seed the old host, then count what a backup carries; timings in seconds."""
    from django.core.management.color import no_style
    from django.db import connection

    from accounts.models import AuthMode, Registry, User
    from accounts.registry import htpasswd
    from accounts.services import create_registry, ensure_keys
    from accounts.services.backups import contents
    from accounts.services.endpoints import notification_secret
    from audit.context import AuditContext

    started = time.perf_counter()
    seeded = pages_bench.seed_accounts(size, random.Random(7))
    with connection.cursor() as cursor:
        for sql in connection.ops.sequence_reset_sql(no_style(), [User]):
            cursor.execute(sql)
        _real_hashes(cursor)
    context = AuditContext.system("bench")
    create_registry("legacy", url="https://legacy.example.org", auth_mode=AuthMode.HTPASSWD, context=context)
    ensure_keys(context)
    for registry in Registry.objects.all():
        notification_secret(registry, context)
    htpasswd.sync_all()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "seeded": seeded,
        "counts": contents.count_rows("default"),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _random_text(length: int) -> str:
    """SQL: ``length`` (at most 76) random characters of bcrypt's alphabet, new for every row."""
    return f"substr(translate(encode(sha512(random()::text::bytea), 'base64'), '+=', '.A'), 1, {length})"


def _real_hashes(cursor: Any) -> None:
    """Password and htpasswd hashes of a real length and alphabet, random so they compress as real ones do."""
    password = f"'pbkdf2_sha256$1000000$' || {_random_text(22)} || '$' || {_random_text(43)} || '='"
    bcrypt = f"'$2y$10$' || {_random_text(53)}"
    cursor.execute(f"UPDATE accounts_user SET password = {password}, htpasswd_hash = {bcrypt}")  # noqa: S608
    cursor.execute(f"UPDATE accounts_robot SET bcrypt_hash = {bcrypt}")  # noqa: S608


def child_counts() -> dict[str, Any]:
    """Every included model's count, and the id sequences that are not past their table's largest id."""
    from django.db import connection

    from accounts.services.backups import contents

    behind = []
    with connection.cursor() as cursor:
        for label in contents.INCLUDED:
            table = contents.model(label)._meta.db_table
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [table])
            sequence = cursor.fetchone()[0]
            if sequence is None:
                continue
            cursor.execute(f"SELECT (SELECT last_value FROM {sequence}), (SELECT max(id) FROM {table})")  # noqa: S608
            last, largest = cursor.fetchone()
            if largest is not None and last < largest:
                behind.append(f"{sequence} at {last}, {table} up to {largest}")
    return {"counts": contents.count_rows("default"), "sequences_behind": behind}


@dataclass
class Timers:
    """Wraps functions by their module attribute and adds up the seconds spent in each."""

    spent: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - began
                self.calls[label] = self.calls.get(label, 0) + 1

        setattr(owner, name, timed)

    def report(self, total: float) -> dict[str, Any]:
        return {
            "total_s": round(total, 2),
            "phases_s": {label: round(seconds, 2) for label, seconds in self.spent.items()},
            "calls": self.calls,
        }


def child_backup_phases(output_dir: str) -> dict[str, Any]:
    """``manage.py backup`` in-process, its pieces timed (the scratch restore split in migrate and load)."""
    from django.core.management import call_command

    from accounts.services import backups
    from accounts.services.backups import archive, contents, files, verify

    timers = Timers()
    timers.wrap(contents, "dump", "dump")
    timers.wrap(archive, "pack", "pack")
    timers.wrap(archive, "encrypt", "encrypt")
    timers.wrap(files, "write", "write")
    timers.wrap(backups, "read_file", "read back (decrypt, unpack, checksums, JSON)")
    timers.wrap(verify, "call_command", "verify: scratch migrate")
    timers.wrap(verify, "replace", "verify: scratch load")
    timers.wrap(contents, "count_rows", "verify: count")
    quiet = {"stdout": io.StringIO(), "stderr": io.StringIO()}
    return _profiled("backup", timers, lambda: call_command("backup", output_dir=output_dir, verbosity=0, **quiet))


def child_restore_phases(path: str) -> dict[str, Any]:
    """``manage.py restore_backup FILE --noinput --force`` in-process, its pieces timed."""
    from django.core.management import call_command

    from accounts.registry import config
    from accounts.services import backups
    from accounts.services.backups import contents, restore

    timers = Timers()
    timers.wrap(backups, "read_file", "read (decrypt, unpack, checksums, JSON)")
    timers.wrap(restore, "plan", "plan (dump this host, diff)")
    timers.wrap(restore, "restore", "restore: one transaction (clear, load, commit's deferred checks)")
    timers.wrap(contents, "clear", "clear (delete every row)")
    timers.wrap(contents, "load", "load (insert every row)")
    timers.wrap(contents, "_reset_sequences", "load: reset sequences")
    timers.wrap(restore, "_keep_peppers", "keep peppers")
    timers.wrap(config, "write_after_restore", "write htpasswd files and bundles")

    def run() -> None:
        call_command("restore_backup", path, noinput=True, force=True, stdout=io.StringIO(), stderr=io.StringIO())

    return _profiled("restore", timers, run)


def _profiled(step: str, timers: Timers, run: Callable[[], None]) -> dict[str, Any]:
    profiler = cProfile.Profile() if PROFILE else None
    began = time.perf_counter()
    if profiler is not None:
        profiler.runcall(run)
    else:
        run()
    result = timers.report(time.perf_counter() - began)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if profiler is not None:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        profile = OUTPUT / f"backup_{step}.prof"
        profiler.dump_stats(profile)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(20)
        result["profile"] = {"file": str(profile), "top_tottime": text.getvalue().splitlines()[:45]}
    return result


def child_main(argv: list[str]) -> dict[str, Any]:
    _setup()
    step = argv[0]
    if step == "seed":
        return child_seed(Size(**json.loads(argv[1])))
    if step == "counts":
        return child_counts()
    if step == "backup-phases":
        return child_backup_phases(argv[1])
    if step == "restore-phases":
        return child_restore_phases(argv[1])
    raise SystemExit(f"unknown child step {step!r}")


# --- parent --------------------------------------------------------------------------------------


def host_env(work: Path, host: str, database: str) -> dict[str, str]:
    """The environment of host ``a`` (old) or ``b`` (new): its own database, DATA_DIR and keys."""
    env = audit_bench.bench_env(work / host, database)
    secret_key, kek = KEYS[host]
    env.update(SECRET_KEY=secret_key, KEY_ENCRYPTION_KEY=kek, BACKUP_KEY=PASSPHRASE, BACKUP_DIR=str(work / host / "b"))
    env["BOOTSTRAP_ON_MIGRATE"] = "true" if host == "b" else "false"  # B is a fresh install, admin and all
    return env


def child(env: dict[str, str], *args: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.backup_bench", "--child", *args]
    result = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def measured(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run ``manage.py args``: wall time, peak RSS (this process's own, from wait4), stdout, timestamped stderr.

    Fails the bench (SystemExit) when the command does not exit 0.
    """
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out: list[bytes] = []
    stamped: list[tuple[float, str]] = []

    def drain_out() -> None:
        assert process.stdout is not None
        while block := process.stdout.read(1 << 16):
            out.append(block)

    def drain_err() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            stamped.append((time.perf_counter() - began, line.decode(errors="replace").rstrip()))

    readers = [threading.Thread(target=drain_out, daemon=True), threading.Thread(target=drain_err, daemon=True)]
    for reader in readers:
        reader.start()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join(timeout=30)
    stdout = b"".join(out).decode(errors="replace")
    if process.returncode != 0:
        tail = "\n".join(line for _, line in stamped[-20:])
        raise SystemExit(f"manage.py {' '.join(args)} exited {process.returncode}:\n{tail}")
    return {
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "stdout": stdout,
        "stdout_lines": stdout.count("\n"),
        "stderr": stamped,
    }


def _step(result: dict[str, Any], note: str = "", **extra: Any) -> dict[str, Any]:
    return {"seconds": result["seconds"], "peak_rss_mb": result["peak_rss_mb"], "note": note, **extra}


def _said(result: dict[str, Any], prefix: str) -> str:
    return next((line for _, line in result["stderr"] if line.startswith(prefix)), "")


def check_counts(env: dict[str, str], expected: dict[str, int], after: str) -> dict[str, int]:
    """B's counts and sequences after a restore; SystemExit when they are not A's."""
    found = child(env, "counts")
    wrong = mismatches(expected, found["counts"])
    if wrong or found["sequences_behind"]:
        raise SystemExit(f"after {after}, B is not A: {'; '.join(wrong + found['sequences_behind'])}")
    _log(f"after {after}: every count equals A's, every sequence past its largest id")
    return found["counts"]


def run(size: Size, work: Path, phases: bool = PHASES, label: str = "full") -> dict[str, Any]:
    """The whole bench for ``size``, in ``work``; its two databases (named after ``label``) are dropped at the end."""
    import psycopg

    databases = {host: f"{PG_DB}_{label}_{host}" for host in ("a", "b")}
    envs = {host: host_env(work, host, database) for host, database in databases.items()}
    began = time.perf_counter()
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        for database in databases.values():
            admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {database}")
    try:
        for host, env in envs.items():
            _log(f"migrating {databases[host]}")
            subprocess.run(
                [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
            )
        return _measure(size, work, envs, phases) | {"total_seconds": round(time.perf_counter() - began, 1)}
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            for database in databases.values():
                admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _measure(size: Size, work: Path, envs: dict[str, dict[str, str]], phases: bool) -> dict[str, Any]:
    a, b = envs["a"], envs["b"]
    _log(f"seeding A: {size}")
    seeded = child(a, "seed", json.dumps(asdict(size)))
    expected = seeded["counts"]
    _log(f"seeded in {seeded['seconds']} s: {sum(expected.values()):,} rows a backup carries")

    _log("backup on A")
    backup = measured(["backup", "--output-dir", str(work / "out"), "-v", "2"], a)
    path = Path(backup["stdout"].strip().splitlines()[-1])
    file_bytes = path.stat().st_size
    steps = {
        "backup": _step(
            backup,
            f"{file_bytes / 1e6:.2f} MB, {sum(expected.values()):,} rows",
            phases_s=phases_from_stages(backup["stderr"], backup["seconds"]),
            said=_said(backup, "verified:"),
        )
    }
    _log(f"backup: {backup['seconds']} s, {file_bytes:,} bytes, {steps['backup']['phases_s']}")

    dry = measured(["restore_backup", str(path), "--dry-run"], b)
    steps["restore --dry-run (fresh B)"] = _step(dry, f"{dry['stdout_lines']:,} lines", said=_said(dry, "Would"))
    _log(f"restore --dry-run: {dry['seconds']} s")
    fresh = measured(["restore_backup", str(path), "--noinput"], b)
    steps["restore (fresh B)"] = _step(fresh, said=_said(fresh, "Restored"))
    _log(f"restore: {fresh['seconds']} s")
    check_counts(b, expected, "the restore onto a fresh install")
    dry_again = measured(["restore_backup", str(path), "--dry-run", "--force"], b)
    steps["restore --dry-run (full B)"] = _step(dry_again, said=_said(dry_again, "Would"))
    force = measured(["restore_backup", str(path), "--noinput", "--force"], b)
    steps["restore --force (full B)"] = _step(force, "deletes every row, then inserts", said=_said(force, "Restored"))
    _log(f"restore --force: {force['seconds']} s")
    restored = check_counts(b, expected, "the restore with --force")
    verified = measured(["verify_backup", str(path)], b)
    steps["verify_backup"] = _step(verified, "scratch SQLite migrate + load + count")

    summary: dict[str, Any] = {
        "size": asdict(size),
        "seeded": seeded,
        "file": {"name": path.name, "bytes": file_bytes, "mb": round(file_bytes / 1e6, 2)},
        "rows": sum(expected.values()),
        "counts": {name: restored[label] for name, label in NAMED.items()},
        "counts_every_model": restored,
        "steps": steps,
    }
    if phases:
        _log("in-process phases: backup on A, restore --force on B")
        summary["in_process"] = {
            "backup": child(a, "backup-phases", str(work / "phases")),
            "restore --force": child(b, "restore-phases", str(path)),
        }
        check_counts(b, expected, "the in-process restore")
    summary["flags"] = flags(summary)
    return summary


def main() -> int:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="backup-bench-"))
    try:
        summary = run(FULL, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = OUTPUT / "backup.json"
    out.write_text(json.dumps(summary, indent=2, default=str))
    counts = ", ".join(f"{n:,} {name}" for name, n in summary["counts"].items())
    print(f"backup bench: {counts}; {summary['rows']:,} rows in all")
    print(f"file: {summary['file']['bytes']:,} bytes ({summary['file']['mb']} MB), age-encrypted tar.gz")
    print(f"backup phases (from its -v 2 stage lines), s: {summary['steps']['backup']['phases_s']}")
    print(table(summary))
    for name, result in summary.get("in_process", {}).items():
        print(f"in-process {name} ({result['total_s']} s, peak RSS {result['peak_rss_mb']} MB): {result['phases_s']}")
    for flag in summary["flags"]:
        print(f"SLOW: {flag}")
    print(f"whole run {summary['total_seconds']} s; written to {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        print(json.dumps(child_main(sys.argv[2:]), default=str), flush=True)
        sys.exit(0)
    sys.exit(main())
