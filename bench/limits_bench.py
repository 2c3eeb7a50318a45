"""What the failure limits cost, and whether failures leak which usernames exist.

1. Tokens/s on repeat good credentials through gunicorn (2 workers) with wrk, limits on and
   off (off = loopback in AUTH_LIMIT_EXEMPT_CIDRS, which skips the cache entirely), for the
   embedded default (SQLite, database cache) and for production (PostgreSQL, Redis cache).
   Runs alternate on/off several times and report medians, so drift hits both alike.
2. Response time of an unknown username, a known username with a wrong password, and an
   inactive account with its right password: interleaved, one at a time, with the real
   password hasher and the limits counting (limits set high enough never to hold).

``make bench`` runs this after the token benchmark; ``python -m bench.limits_bench`` alone.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import __main__ as token_bench  # noqa: E402
from tests.harness.ports import free_port  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_LIMIT_ROUNDS", "3"))
SAMPLES = int(os.environ.get("BENCH_TIMING_SAMPLES", "60"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
SCOPE = quote("repository:bench/app:pull,push")

SETUP = """
from accounts import services
from audit.context import AuditContext
ctx = AuditContext.system("bench")
services.create_user("gone", password="{pw}", context=ctx, validate=False, is_active=False)
"""


def _serve(env: dict[str, str], work: Path, label: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = env | {"PUBLIC_URL": f"http://127.0.0.1:{port}"}
    return token_bench.gunicorn("registryadmin.wsgi:application", port, env, work / f"{label}.log"), port


def throughput(work: Path, env: dict[str, str], label: str) -> dict[str, float]:
    """Median tokens/s over alternating rounds with the limits on and off."""
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for _ in range(ROUNDS):
        for mode in ("on", "off"):
            extra = {"AUTH_LIMIT_EXEMPT_CIDRS": "127.0.0.0/8"} if mode == "off" else {}
            server, port = _serve(env | extra, work, f"{label}-{mode}")
            try:
                url = f"http://127.0.0.1:{port}/auth/token?service=registry&scope={SCOPE}"
                token_bench.wrk(url, work)  # warm-up
                result = token_bench.wrk(url, work)
                if result["errors"]:
                    raise SystemExit(f"{label} {mode}: {result['errors']} non-2xx answers under load")
                rates[mode].append(result["tokens_per_s"])
            finally:
                server.terminate()
                server.wait()
    on, off = statistics.median(rates["on"]), statistics.median(rates["off"])
    return {
        "tokens_per_s_limits_on": round(on, 1),
        "tokens_per_s_limits_off": round(off, 1),
        "cost_percent": round((off - on) / off * 100, 2),
        "rounds_on": rates["on"],
        "rounds_off": rates["off"],
    }


def _ask(port: int, username: str, password: str) -> tuple[float, int, bytes]:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    started = time.perf_counter()
    conn.request("GET", f"/auth/token?service=registry&scope={SCOPE}", headers={"Authorization": f"Basic {auth}"})
    response = conn.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed, response.status, body


def timing(work: Path, env: dict[str, str]) -> dict[str, object]:
    """Unknown vs known-wrong vs dead-right, interleaved in random order, with the real hasher."""
    env = env | {"AUTH_FAIL_LIMIT_USER": "1000000", "AUTH_FAIL_LIMIT_IP": "1000000"}
    token_bench.run([sys.executable, "manage.py", "shell", "-v0", "-c", SETUP.format(pw=token_bench.PASSWORD)], env)
    server, port = _serve(env, work, "timing")
    cases = {
        "unknown_user": ("nobody-by-this-name", "some-guess-123"),
        "known_user_wrong_password": ("bench", "some-guess-123"),
        "inactive_user_right_password": ("gone", token_bench.PASSWORD),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    answers: set[tuple[int, bytes]] = set()
    try:
        for user, password in cases.values():
            _ask(port, user, password)  # warm-up per case
        order = [name for name in cases for _ in range(SAMPLES)]
        random.Random(7).shuffle(order)
        for name in order:
            elapsed, status, body = _ask(port, *cases[name])
            times[name].append(elapsed * 1000)
            answers.add((status, body))
    finally:
        server.terminate()
        server.wait()
    medians = {name: round(statistics.median(values), 2) for name, values in times.items()}
    spread = {
        name: round(statistics.quantiles(values, n=4)[2] - statistics.quantiles(values, n=4)[0], 2)
        for name, values in times.items()
    }
    base = medians["unknown_user"]
    return {
        "samples_each": SAMPLES,
        "median_ms": medians,
        "iqr_ms": spread,
        "median_difference_vs_unknown_ms": {name: round(value - base, 2) for name, value in medians.items()},
        "distinct_answers": len(answers),
        "status": sorted({status for status, _ in answers}),
    }


def _app(work: Path, database_url: str, cache_url: str | None) -> dict[str, str]:
    env = token_bench.app_env(work, database_url, 0)
    if cache_url:
        env["CACHE_URL"] = cache_url
    work.mkdir(parents=True, exist_ok=True)
    token_bench.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env)
    token_bench.run(
        [sys.executable, "manage.py", "shell", "-v0", "-c", token_bench.SETUP.format(pw=token_bench.PASSWORD)], env
    )
    return env


def _postgres(work: Path) -> dict[str, object] | None:
    import psycopg
    import redis

    try:
        with psycopg.connect(token_bench.PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {token_bench.PG_DB}_limits")
            conn.execute(f"CREATE DATABASE {token_bench.PG_DB}_limits")
        redis.Redis.from_url(REDIS_URL).flushdb()
    except Exception as exc:
        print(f"PostgreSQL or Redis not available for the limits benchmark: {exc}", file=sys.stderr)
        return None
    try:
        base = token_bench.PG_ADMIN_URL.rsplit("/", 1)[0]
        env = _app(work, f"{base}/{token_bench.PG_DB}_limits", REDIS_URL)
        return throughput(work, env, "pg-redis")
    finally:
        with psycopg.connect(token_bench.PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {token_bench.PG_DB}_limits WITH (FORCE)")


def run(work: Path) -> dict[str, object]:
    sqlite = work / "limits-sqlite"
    env = _app(sqlite, f"sqlite:///{sqlite / 'bench.sqlite3'}", None)
    return {
        "sqlite_database_cache": throughput(sqlite, env, "sqlite"),
        "postgresql_redis_cache": _postgres(work / "limits-pg"),
        "failure_timing_sqlite": timing(sqlite, env),
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="registryadmin-limits-bench-"))
    results = run(work)
    out = ROOT / "bench" / "output"
    out.mkdir(exist_ok=True)
    (out / "limits.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
