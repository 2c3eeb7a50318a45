"""How long regenerating the htpasswd file takes for 10,000 users after one change.

``python -m bench.htpasswd_bench`` prints JSON. The measurement runs in a child
process with its own DATA_DIR and SQLite database (the environment must be set
before Django starts), so nothing here touches a real installation. Users get
precomputed bcrypt hashes through ``bulk_create``: hashing 10,000 passwords would
take minutes and measure bcrypt, not us.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
USERS = int(os.environ.get("BENCH_HTPASSWD_USERS", "10000"))
ROUNDS = 5

# Runs inside the child process, after DATA_DIR and DATABASE_URL point at the throwaway directory.
MEASURE = """
import json, statistics, sys, time
import bcrypt, django
django.setup()
from django.core.management import call_command
from accounts import services
from accounts.registry import htpasswd
from accounts.models import User
from audit.context import AuditContext

USERS, ROUNDS = int(sys.argv[1]), int(sys.argv[2])
context = AuditContext.system("bench")


def timed(action):
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def median(samples):
    return round(statistics.median(samples), 4)


call_command("migrate", verbosity=0)
hashes = ["$2y$" + bcrypt.hashpw(f"pw{n}".encode(), bcrypt.gensalt(10)).decode()[4:] for n in range(8)]
User.objects.bulk_create(
    [User(username=f"user{n:05d}", password="!", htpasswd_hash=hashes[n % 8]) for n in range(USERS)],
    batch_size=1000,
)
registry = services.create_registry("bench", auth_mode="htpasswd", context=context)
path = htpasswd.path_for(registry)
htpasswd.sync_all()
sync, entries, render, write, deactivate = [], [], [], [], []
for round_ in range(ROUNDS):
    User.objects.filter(username=f"user{round_:05d}").update(htpasswd_hash=hashes[(round_ + 1) % 8])
    sync.append(timed(htpasswd.sync_all))
    entries.append(timed(htpasswd.current_entries))
    rows = htpasswd.current_entries()
    render.append(timed(lambda: htpasswd.render(rows)))
    content = htpasswd.render(rows)
    write.append(timed(lambda: htpasswd.write(path, content)))
    user = User.objects.get(username=f"user{USERS - 1 - round_:05d}")
    deactivate.append(timed(lambda: services.update_user(user, is_active=False, context=context)))
print(json.dumps({
    "users": USERS,
    "rounds": ROUNDS,
    "sync_all_median_s": median(sync),
    "sync_all_max_s": round(max(sync), 4),
    "query_median_s": median(entries),
    "render_median_s": median(render),
    "write_median_s": median(write),
    "deactivate_user_to_file_median_s": median(deactivate),
    "file_bytes": path.stat().st_size,
    "file_lines": len(path.read_text().splitlines()),
}))
"""


def child_env(work: Path) -> dict[str, str]:
    """A clean environment for the child: its own data directory and SQLite database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "TEST_", "HTPASSWD_"))}
    env.update(
        DJANGO_SETTINGS_MODULE="registryadmin.settings",
        DATA_DIR=str(work / "data"),
        DATABASE_URL=f"sqlite:///{work / 'bench.sqlite3'}",
        SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        BOOTSTRAP_ON_MIGRATE="false",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(ROOT),
    )
    return env


def run(users: int = USERS, rounds: int = ROUNDS) -> dict:
    """Measure ``htpasswd.sync_all()`` for ``users`` users after one change; median of ``rounds``."""
    work = Path(tempfile.mkdtemp(prefix="registryadmin-htpasswd-bench-"))
    try:
        result = subprocess.run(
            [sys.executable, "-c", MEASURE, str(users), str(rounds)],
            cwd=ROOT,
            env=child_env(work),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"htpasswd bench failed:\n{result.stderr[-3000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
