"""``make bench``: token throughput and latency, and skopeo inspect times, against the floor.

Everything runs on loopback: gunicorn with 2 workers, wrk as the load
generator, docker-registry + skopeo for the client view. Figures are printed
as a table and written to bench/output/results.json.
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
DURATION = os.environ.get("BENCH_DURATION", "10s")
INSPECTS = int(os.environ.get("BENCH_INSPECTS", "15"))
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
PG_DB = "registryadmin_bench"

SETUP = """
from accounts import services
from accounts.models import Registry
from audit.context import AuditContext
ctx = AuditContext.system("bench")
user = services.create_user("bench", password="{pw}", context=ctx, validate=False)
team = services.create_team("bench", context=ctx)
services.set_membership(team, user, "member", context=ctx)
services.create_grant(team, "bench/**", "write", context=ctx)
for i in range(20):
    services.create_grant(user, f"other{{i}}/*", "read", context=ctx)
services.create_registry("registry", context=ctx)
services.ensure_keys()
robot, secret = services.create_robot(team, "ci", grants=[("bench/**", "write")], context=ctx)
print(secret)
"""


def run(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=True, **kwargs)


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


def gunicorn(app: str, port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            app,
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    wait_for_http(f"http://127.0.0.1:{port}/", timeout=30)
    return process


def wrk(url: str, work: Path, creds: str = f"bench:{PASSWORD}") -> dict[str, float]:
    auth = base64.b64encode(creds.encode()).decode()
    script = work / "auth.lua"
    script.write_text(f'wrk.headers["Authorization"] = "Basic {auth}"\n')
    result = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{DURATION}", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    text = result.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return {
        "tokens_per_s": rate,
        "p50_ms": _latency(text, "50%"),
        "p99_ms": _latency(text, "99%"),
        "errors": int(non2xx.group(1)) if non2xx else 0,
    }


def _latency(text: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


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
    return statistics.median(times) * 1000


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


def bench_app(work: Path, database_url: str, label: str) -> dict[str, float]:
    port = free_port()
    env = app_env(work, database_url, port)
    run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], env)
    robot_secret = run([sys.executable, "manage.py", "shell", "-v0", "-c", SETUP.format(pw=PASSWORD)], env).stdout
    server = gunicorn("registryadmin.wsgi:application", port, env, work / f"{label}.log")
    try:
        url = f"http://127.0.0.1:{port}/auth/token?service=registry&scope={quote('repository:bench/app:pull,push')}"
        wrk(url, work)  # warm-up: credential cache, signer, connections
        result = wrk(url, work)
        robot = wrk(url, work, f"robot$bench+ci:{robot_secret.strip()}")
        result["robot_tokens_per_s"] = robot["tokens_per_s"]
        result["robot_p50_ms"] = robot["p50_ms"]
        if label == "sqlite":
            result["inspect_ms"] = inspect_through(work, env)
        return result
    finally:
        server.terminate()
        server.wait()


def inspect_through(work: Path, env: dict[str, str]) -> float:
    fragment = yaml.safe_load(run([sys.executable, "manage.py", "registry_config"], env).stdout)
    fragment.pop("notifications")
    (work / "reg-app").mkdir()
    with RegistryServer(fragment, workdir=work / "reg-app") as registry:
        push_image(registry, work, f"bench:{PASSWORD}")
        return inspect_median(registry, f"bench:{PASSWORD}")


def bench_floor(work: Path) -> dict[str, float]:
    floor_dir = work / "floor"
    floor_dir.mkdir()
    key = generate_private_key()
    (floor_dir / "key.pem").write_bytes(private_key_pem(key))
    from datetime import UTC, datetime

    cert = certificate_pem(make_certificate(key, "registryadmin", datetime.now(UTC)))
    (floor_dir / "cert.pem").write_text(cert)
    port = free_port()
    env = dict(os.environ, FLOOR_DIR=str(floor_dir), PYTHONPATH=str(ROOT))
    server = gunicorn("bench.floor:application", port, env, work / "floor.log")
    try:
        url = f"http://127.0.0.1:{port}/auth/token?service=registry&scope={quote('repository:bench/app:pull,push')}"
        wrk(url, work)
        result = wrk(url, work)
        auth = {
            "token": {
                "realm": f"http://127.0.0.1:{port}/auth/token",
                "service": "registry",
                "issuer": "registryadmin",
                "rootcertbundle": str(floor_dir / "cert.pem"),
            }
        }
        (work / "reg-floor").mkdir()
        with RegistryServer({"auth": auth}, workdir=work / "reg-floor") as registry:
            push_image(registry, work, "bench:x")
            result["inspect_ms"] = inspect_median(registry, "bench:x")
        return result
    finally:
        server.terminate()
        server.wait()


def bench_htpasswd(work: Path) -> dict[str, float]:
    (work / "reg-htpasswd").mkdir()
    htpasswd = work / "reg-htpasswd" / "htpasswd"
    entry = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$", 1)
    htpasswd.write_text(f"bench:{entry}\n")
    auth = {"htpasswd": {"realm": "registry", "path": str(htpasswd)}}
    with RegistryServer({"auth": auth}, workdir=work / "reg-htpasswd") as registry:
        push_image(registry, work, f"bench:{PASSWORD}")
        return {"inspect_ms": inspect_median(registry, f"bench:{PASSWORD}")}


def with_postgres(work: Path) -> dict[str, float] | None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
            conn.execute(f"CREATE DATABASE {PG_DB}")
    except Exception as exc:
        print(f"PostgreSQL not available for the benchmark: {exc}", file=sys.stderr)
        return None
    try:
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        return bench_app(work / "pg", f"{base}/{PG_DB}", "postgresql")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB} WITH (FORCE)")


def main() -> None:
    for tool in ("wrk", "skopeo", "docker-registry"):
        if not shutil.which(tool):
            sys.exit(f"bench needs {tool}: apt-get install wrk skopeo docker-registry")
    work = Path(tempfile.mkdtemp(prefix="registryadmin-bench-"))
    (work / "pg").mkdir()
    results = {
        "floor": bench_floor(work),
        "app_sqlite": bench_app(work, f"sqlite:///{work / 'bench.sqlite3'}", "sqlite"),
        "app_postgresql": with_postgres(work),
        "htpasswd": bench_htpasswd(work),
        "htpasswd_regeneration_10k_users": htpasswd_bench.run(),
    }
    floor = results["floor"]["tokens_per_s"]
    for name in ("app_sqlite", "app_postgresql"):
        if results[name]:
            results[name]["vs_floor"] = round(results[name]["tokens_per_s"] / floor, 3)
    out = ROOT / "bench" / "output"
    out.mkdir(exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
