"""Where one repeat token request's time goes, in-process (``python -m bench.token_profile``).

Seeds a throwaway SQLite database (or ``BENCH_DATABASE_URL``), then calls the production WSGI
handler directly, without a socket, for ``BENCH_REQUESTS`` repeat user-password GETs, and prints
the mean time per request, the SQL statements one request sends, and cProfile's top functions.
"""

from __future__ import annotations

import base64
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WORK = Path(tempfile.mkdtemp(prefix="registryadmin-profile-"))
os.environ.update(
    DJANGO_SETTINGS_MODULE="registryadmin.settings",
    DATABASE_URL=os.environ.get("BENCH_DATABASE_URL", f"sqlite:///{WORK / 'profile.sqlite3'}"),
    DATA_DIR=str(WORK / "data"),
    SECRET_KEY="profile-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    BOOTSTRAP_ON_MIGRATE="false",
    LOG_LEVEL="WARNING",
)
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
PASSWORD = "profile-password-123"


def main() -> None:
    import django

    django.setup(set_prefix=False)
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    from accounts import services
    from audit.context import AuditContext
    from registryadmin.handler import SafeWSGIHandler

    ctx = AuditContext.system("profile")
    if not services.has_keys():
        user = services.create_user("bench", password=PASSWORD, context=ctx, validate=False)
        team = services.create_team("bench", context=ctx)
        services.set_membership(team, user, "member", context=ctx)
        services.create_grant(team, "bench/**", "write", context=ctx)
        services.create_registry("registry", context=ctx)
        services.ensure_keys()
    handler = SafeWSGIHandler()
    auth = "Basic " + base64.b64encode(f"bench:{PASSWORD}".encode()).decode()
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/auth/token",
        "QUERY_STRING": "service=registry&scope=repository%3Abench%2Fapp%3Apull%2Cpush",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": auth,
        "HTTP_USER_AGENT": "docker/27.0",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    statuses: list[str] = []

    def start_response(status, headers, exc_info=None):
        statuses.append(status)

    def one() -> None:
        body = handler(dict(environ, **{"wsgi.input": io.BytesIO(b"")}), start_response)
        b"".join(body)
        body.close()

    for _ in range(50):
        one()  # the password check, the cache, the signer, the connection
    assert set(statuses) == {"200 OK"}, statuses[:3]
    statements: list[str] = []

    def spy(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        one()
    started = time.perf_counter()
    for _ in range(REQUESTS):
        one()
    mean_us = (time.perf_counter() - started) / REQUESTS * 1e6
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(REQUESTS // 3):
        one()
    profile.disable()
    print(f"{connection.vendor}: {mean_us:.0f} us per repeat request, in-process, over {REQUESTS} requests")
    print(f"SQL statements in one request: {len(statements)}")
    for sql in statements:
        print(f"  {sql[:160]}")
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats(os.environ.get("BENCH_SORT", "cumulative")).print_stats(30)
    print(stream.getvalue())


if __name__ == "__main__":
    main()
