"""``make bench``: token throughput and latency per database and credential kind, and skopeo inspect times.

Everything runs on loopback: gunicorn with 2 workers, wrk as the load generator, docker-registry +
skopeo for the client view. The machine is noisy, so the floor (bench/floor.py, a bare ES256 signer
under the same gunicorn) is measured before and after every app measurement, and each measurement
is compared with the mean of the two floor runs beside it. Figures are printed as a table and
written to bench/output/results.json.
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
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import bcrypt
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from accounts.registry.signing import certificate_pem, generate_private_key, make_certificate, private_key_pem  # noqa: E402
from bench import htpasswd_bench  # noqa: E402
from tests.harness.ports import free_port, wait_for_http  # noqa: E402
from tests.harness.registry import RegistryServer  # noqa: E402

PASSWORD = "bench-password-123"
USER_CREDS = f"bench:{PASSWORD}"
DURATION = os.environ.get("BENCH_DURATION", "10s")
INSPECTS = int(os.environ.get("BENCH_INSPECTS", "15"))
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = "registryadmin_bench"
APP = "registryadmin.wsgi:application"
PUBLIC_REPOSITORY = "public/base"
SCOPES = {
    "user": "repository:bench/app:pull,push",
    "robot": "repository:bench/app:pull,push",
    "pat": "repository:bench/app:pull,push",
    "anonymous": f"repository:{PUBLIC_REPOSITORY}:pull",
}
# Group commit: a committing backend waits 200 us for at least 2 others to share its WAL flush.
GROUP_COMMIT = "-c commit_delay=200 -c commit_siblings=2"
GROUP_COMMIT_LABEL = "postgresql+group-commit"
SQLITE_GOAL, POSTGRESQL_GOAL, P99_GOAL_MS, INSPECT_GOAL = 0.5, 0.33, 20.0, 1.1
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never through a proxy

SETUP = """
import json
from accounts import services
from audit.context import AuditContext
ctx = AuditContext.system("bench")
user = services.create_user("bench", password="{pw}", context=ctx, validate=False)
team = services.create_team("bench", context=ctx)
services.set_membership(team, user, "member", context=ctx)
services.create_grant(team, "bench/**", "write", context=ctx)
for i in range(20):
    services.create_grant(user, f"other{{i}}/*", "read", context=ctx)
registry = services.create_registry("registry", context=ctx)
services.ensure_keys()
robot, robot_secret = services.create_robot(team, "ci", grants=[("bench/**", "write")], context=ctx)
pat, pat_secret = services.create_access_token(user, "bench", context=ctx)
services.create_repository("{public}", public=True, registry=registry, context=ctx)
print(json.dumps({{"robot": robot_secret, "pat": pat_secret}}))
"""

SHOW_SETTING = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SHOW {name}")
    print(cursor.fetchone()[0])
"""

Row = dict[str, Any]


# Processes ---------------------------------------------------------------------


def run(args: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=True, **kwargs)


def manage(env: dict[str, str], *args: str) -> str:
    return run([sys.executable, "manage.py", *args], env).stdout


def app_env(work: Path, database_url: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "TEST_"))}
    env.update(
        DATA_DIR=str(work / "data"),
        DATABASE_URL=database_url,
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY="bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        LOG_LEVEL="WARNING",
        BOOTSTRAP_ON_MIGRATE="false",
        DJANGO_SETTINGS_MODULE="registryadmin.settings",
    )
    return env


@contextmanager
def serving(app: str, port: int, env: dict[str, str], log: Path) -> Iterator[None]:
    """gunicorn with 2 workers on ``port`` until the block ends."""
    args = ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--log-level", "warning"]
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", app, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )

    def alive() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn {app} exited {process.returncode}:\n{log.read_text()[-3000:]}")

    try:
        wait_for_http(f"http://127.0.0.1:{port}/", timeout=30, check=alive)
        yield
    finally:
        process.terminate()
        process.wait()


def token_url(port: int, scope: str) -> str:
    return f"http://127.0.0.1:{port}/auth/token?service=registry&scope={quote(scope)}"


# wrk -----------------------------------------------------------------------------


def basic(creds: str) -> str:
    return "Basic " + base64.b64encode(creds.encode()).decode()


def wrk(url: str, creds: str | None) -> Row:
    """Load ``url`` for DURATION; ``creds`` (user:secret) go as Basic credentials, None sends no Authorization."""
    header = [] if creds is None else ["-H", f"Authorization: {basic(creds)}"]
    command = ["wrk", "-t2", "-c16", f"-d{DURATION}", "--latency", *header, url]
    return parse_wrk(subprocess.run(command, capture_output=True, text=True, check=True).stdout)


def parse_wrk(text: str) -> Row:
    total = int(_match(r"(\d+) requests in", text))
    rate = float(_match(r"Requests/sec:\s+([\d.]+)", text))
    errors = int(_match(r"Non-2xx or 3xx responses:\s+(\d+)", text, "0"))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    return {
        "tokens_per_s": round(rate * (total - errors) / total, 1) if total else 0.0,  # 2xx answers only
        "requests_per_s": rate,
        "p50_ms": _latency(text, "50%"),
        "p99_ms": _latency(text, "99%"),
        "errors": errors,
        "socket_errors": sum(int(n) for n in sockets.groups()) if sockets else 0,
    }


def _match(pattern: str, text: str, default: str | None = None) -> str:
    found = re.search(pattern, text)
    if found:
        return found.group(1)
    if default is None:
        raise RuntimeError(f"wrk output has no {pattern!r}:\n{text}")
    return default


def _latency(text: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", text).groups()
    return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 2)


def probe(url: str, creds: str | None) -> str:
    """One request's status and body, to show what the non-2xx answers were."""
    headers = {} if creds is None else {"Authorization": basic(creds)}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310  # our own http://127.0.0.1 URL
    try:
        with _OPENER.open(request, timeout=10) as response:
            return f"{response.status} {response.read(300).decode(errors='replace')}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read(300).decode(errors='replace')}"


# The floor and the app ---------------------------------------------------------------


@dataclass
class Floor:
    """The floor token server's wrk runs, one before the first app measurement and one after each."""

    url: str
    runs: list[Row] = field(default_factory=list)

    def measure(self) -> int:
        self.runs.append(wrk(self.url, USER_CREDS))
        return len(self.runs) - 1

    def mean(self, indexes: list[int]) -> float:
        return statistics.mean(self.runs[i]["tokens_per_s"] for i in indexes)


def measure_case(floor: Floor, database: str, kind: str, url: str, creds: str | None) -> Row:
    """Warm up, measure, then measure the floor again; the ratio is against the floor runs either side."""
    before = len(floor.runs) - 1
    wrk(url, creds)  # warm-up: credential cache, signer, connections
    result = wrk(url, creds)
    adjacent = [before, floor.measure()]
    floor_mean = floor.mean(adjacent)
    result.update(
        database=database,
        kind=kind,
        floor_runs=adjacent,
        floor_mean=round(floor_mean, 1),
        vs_floor=round(result["tokens_per_s"] / floor_mean, 3),
    )
    if result["errors"] or result["socket_errors"]:
        result["error_sample"] = probe(url, creds)
    return result


def measure_app(floor: Floor, database: str, port: int, creds: dict[str, str | None]) -> list[Row]:
    return [measure_case(floor, database, kind, token_url(port, SCOPES[kind]), creds[kind]) for kind in creds]


def set_up_app(env: dict[str, str]) -> dict[str, str | None]:
    """Migrate and seed; the credentials of each kind (None: anonymous)."""
    manage(env, "migrate", "--noinput", "-v0")
    secrets = json.loads(manage(env, "shell", "-v0", "-c", SETUP.format(pw=PASSWORD, public=PUBLIC_REPOSITORY)))
    return {
        "user": USER_CREDS,
        "robot": f"robot$bench+ci:{secrets['robot']}",
        "pat": f"bench:{secrets['pat']}",
        "anonymous": None,
    }


def bench_sqlite(floor: Floor, work: Path) -> tuple[list[Row], float]:
    """Every credential kind on SQLite, then skopeo inspect through the app."""
    port = free_port()
    env = app_env(work, f"sqlite:///{work / 'bench.sqlite3'}", port)
    creds = set_up_app(env)
    with serving(APP, port, env, work / "sqlite.log"):
        rows = measure_app(floor, "sqlite", port, creds)
        return rows, inspect_through(work, env)


def bench_postgresql(floor: Floor, work: Path) -> list[Row]:
    """Every credential kind with synchronous commit, then the user password again with group commit."""
    database_url = create_pg_database()
    if database_url is None:
        return []
    try:
        port = free_port()
        env = app_env(work / "pg", database_url, port)
        creds = set_up_app(env)
        with serving(APP, port, env, work / "postgresql.log"):
            rows = measure_app(floor, "postgresql", port, creds)
        return [*rows, bench_group_commit(floor, work, database_url)]
    finally:
        drop_pg_database()


def bench_group_commit(floor: Floor, work: Path, database_url: str) -> Row:
    port = free_port()
    env = group_commit_env(work / "pg", database_url, port)
    with serving(APP, port, env, work / "postgresql-group-commit.log"):
        url = token_url(port, SCOPES["user"])
        row = measure_case(floor, GROUP_COMMIT_LABEL, "user", url, USER_CREDS)
    row["settings"] = {name: pg_setting(env, name) for name in ("commit_delay", "commit_siblings")}
    return row


def group_commit_env(work: Path, database_url: str, port: int) -> dict[str, str]:
    """The URL's ``options`` reach libpq through dj_database_url; PGOPTIONS if they stop doing so."""
    env = app_env(work, f"{database_url}?options={quote(GROUP_COMMIT)}", port)
    if pg_setting(env, "commit_delay") != "200":
        env = app_env(work, database_url, port) | {"PGOPTIONS": GROUP_COMMIT}
    return env


def pg_setting(env: dict[str, str], name: str) -> str:
    """A setting as the app's own connections see it."""
    code = SHOW_SETTING.format(name=name)
    return manage(env, "shell", "-v0", "-c", code).strip()


def create_pg_database() -> str | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
            conn.execute(f"CREATE DATABASE {PG_DB}")
    except Exception as exc:
        print(f"PostgreSQL not available for the benchmark: {exc}", file=sys.stderr)
        return None
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{PG_DB}"


def drop_pg_database() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


# skopeo inspect -------------------------------------------------------------------


def inspect_median(registry: RegistryServer, creds: str) -> float:
    times = []
    for _ in range(INSPECTS):
        started = time.perf_counter()
        subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", "--creds", creds, f"docker://{registry.host}/bench/app:latest"],
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 1)


def push_image(registry: RegistryServer, work: Path, creds: str) -> None:
    from tests.harness.ociimage import write_oci_image

    image = write_oci_image(work / "image", payload=b"bench")
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--insecure-policy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            f"oci:{image.dir}",
            f"docker://{registry.host}/bench/app:latest",
        ],
        check=True,
        capture_output=True,
    )


def inspect_with(auth: dict[str, Any], workdir: Path, creds: str) -> float:
    workdir.mkdir()
    with RegistryServer(auth, workdir=workdir) as registry:
        push_image(registry, workdir, creds)
        return inspect_median(registry, creds)


def inspect_through(work: Path, env: dict[str, str]) -> float:
    fragment = yaml.safe_load(manage(env, "registry_config"))
    fragment.pop("notifications")
    return inspect_with(fragment, work / "reg-app", USER_CREDS)


def inspect_floor(work: Path, port: int, floor_dir: Path) -> float:
    auth = {
        "token": {
            "realm": f"http://127.0.0.1:{port}/auth/token",
            "service": "registry",
            "issuer": "registryadmin",
            "rootcertbundle": str(floor_dir / "cert.pem"),
        }
    }
    return inspect_with({"auth": auth}, work / "reg-floor", "bench:x")


def inspect_htpasswd(work: Path) -> float:
    htpasswd = work / "htpasswd"
    entry = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$", 1)
    htpasswd.write_text(f"bench:{entry}\n")
    auth = {"htpasswd": {"realm": "registry", "path": str(htpasswd)}}
    return inspect_with({"auth": auth}, work / "reg-htpasswd", USER_CREDS)


def floor_keys(work: Path) -> Path:
    floor_dir = work / "floor"
    floor_dir.mkdir()
    key = generate_private_key()
    (floor_dir / "key.pem").write_bytes(private_key_pem(key))
    (floor_dir / "cert.pem").write_text(certificate_pem(make_certificate(key, "registryadmin", datetime.now(UTC))))
    return floor_dir


# Report --------------------------------------------------------------------------------

HEADER = f"{'database':<24} {'credential':<10} {'tokens/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'errors':>7} "
HEADER += f"{'floor/s':>8} {'vs floor':>8}"


def table(rows: list[Row]) -> list[str]:
    lines = [HEADER, "-" * len(HEADER)]
    for r in rows:
        errors = r["errors"] + r["socket_errors"]
        lines.append(
            f"{r['database']:<24} {r['kind']:<10} {r['tokens_per_s']:>9.1f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
            f"{errors:>7}{'!' if errors else ' '}{r['floor_mean']:>8.1f} {r['vs_floor']:>7.2f}x"
        )
    return lines


def warnings(rows: list[Row]) -> list[str]:
    return [
        f"!!! WARNING: {r['database']}/{r['kind']}: {r['errors']} non-2xx responses, {r['socket_errors']} socket "
        f"errors; its figures are not token throughput. One answer: {r['error_sample']}"
        for r in rows
        if r["errors"] or r["socket_errors"]
    ]


def goal(label: str, rows: list[Row], key: str, limit: float, *, at_least: bool, unit: str) -> str:
    """Met when every row is on the right side of ``limit`` without errors; names the worst row."""
    if not rows:
        return f"{label}: not measured"
    worst = (min if at_least else max)(rows, key=lambda r: r[key])
    clean = not any(r["errors"] or r["socket_errors"] for r in rows)
    met = clean and (worst[key] >= limit if at_least else worst[key] < limit)
    verdict = "met" if met else "NOT MET" + ("" if clean else " (non-2xx responses)")
    return f"{label}: {verdict}, worst {worst[key]:.2f}{unit} ({worst['database']}/{worst['kind']})"


def goal_lines(rows: list[Row], inspect: dict[str, float]) -> list[str]:
    sqlite = [r for r in rows if r["database"] == "sqlite"]
    postgresql = [r for r in rows if r["database"] == "postgresql"]
    inspect_ratio = inspect["app_sqlite"] / inspect["floor"]
    inspect_verdict = "met" if inspect_ratio <= INSPECT_GOAL else "NOT MET"
    return [
        goal(f"SQLite >= {SQLITE_GOAL}x floor", sqlite, "vs_floor", SQLITE_GOAL, at_least=True, unit="x"),
        goal(
            f"PostgreSQL >= {POSTGRESQL_GOAL}x floor (synchronous commit)",
            postgresql,
            "vs_floor",
            POSTGRESQL_GOAL,
            at_least=True,
            unit="x",
        ),
        goal(f"p99 < {P99_GOAL_MS:g} ms", rows, "p99_ms", P99_GOAL_MS, at_least=False, unit=" ms"),
        f"skopeo inspect within {INSPECT_GOAL}x of the floor: {inspect_verdict}, {inspect_ratio:.2f}x",
    ]


def group_commit_line(rows: list[Row]) -> list[str]:
    synchronous = [r for r in rows if r["database"] == "postgresql" and r["kind"] == "user"]
    grouped = [r for r in rows if r["database"] == GROUP_COMMIT_LABEL]
    if not (synchronous and grouped):
        return []
    change = grouped[0]["vs_floor"] / synchronous[0]["vs_floor"]
    return [
        f"group commit ({GROUP_COMMIT}, seen as {grouped[0]['settings']}): PostgreSQL user password "
        f"{synchronous[0]['vs_floor']:.2f}x -> {grouped[0]['vs_floor']:.2f}x floor ({change:.2f}x), "
        f"p99 {synchronous[0]['p99_ms']:.2f} -> {grouped[0]['p99_ms']:.2f} ms"
    ]


def report(results: dict[str, Any]) -> str:
    rows, inspect = results["tokens"], results["inspect_ms"]
    floor_runs = ", ".join(f"{r['tokens_per_s']:.0f}" for r in results["floor_runs"])
    htpasswd = results["htpasswd_regeneration_10k_users"]
    return "\n".join(
        [
            f"Token endpoint, wrk -t2 -c16 -d{DURATION} (after a warm-up run of each case)",
            *table(rows),
            *warnings(rows),
            f"floor runs, tokens/s in order: {floor_runs}",
            f"skopeo inspect median of {INSPECTS}: app (SQLite) {inspect['app_sqlite']:.1f} ms, "
            f"floor {inspect['floor']:.1f} ms, htpasswd mode {inspect['htpasswd']:.1f} ms",
            f"htpasswd regeneration, 10k users: {json.dumps(htpasswd)}",
            *group_commit_line(rows),
            "Goals:",
            *(f"  {line}" for line in goal_lines(rows, inspect)),
        ]
    )


# Main ----------------------------------------------------------------------------------


def bench_tokens(work: Path) -> dict[str, Any]:
    """The floor server runs throughout; app measurements on each database interleave with its runs."""
    floor_dir = floor_keys(work)
    port = free_port()
    env = dict(os.environ, FLOOR_DIR=str(floor_dir), PYTHONPATH=str(ROOT))
    with serving("bench.floor:application", port, env, work / "floor.log"):
        floor = Floor(token_url(port, SCOPES["user"]))
        wrk(floor.url, USER_CREDS)  # warm-up
        floor.measure()
        sqlite_rows, app_inspect = bench_sqlite(floor, work)
        rows = [*sqlite_rows, *bench_postgresql(floor, work)]
        inspect = {"app_sqlite": app_inspect, "floor": inspect_floor(work, port, floor_dir)}
    return {"tokens": rows, "floor_runs": floor.runs, "inspect_ms": inspect}


def main() -> None:
    for tool in ("wrk", "skopeo", "docker-registry"):
        if not shutil.which(tool):
            sys.exit(f"bench needs {tool}: apt-get install wrk skopeo docker-registry")
    work = Path(tempfile.mkdtemp(prefix="registryadmin-bench-"))
    (work / "pg").mkdir()
    results = bench_tokens(work)
    results["inspect_ms"]["htpasswd"] = inspect_htpasswd(work)
    results["htpasswd_regeneration_10k_users"] = htpasswd_bench.run()
    results["goals"] = goal_lines(results["tokens"], results["inspect_ms"])
    out = ROOT / "bench" / "output"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"(all figures in {out / 'results.json'})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
