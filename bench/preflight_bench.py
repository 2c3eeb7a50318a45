"""``python -m bench.preflight_bench`` (part of ``make bench``): how long a signing-key preflight takes.

Issue 16 asks for the time of a preflight against one registry: the check that a registry accepts a
token signed with the *next* key, which every rotation (by hand or scheduled) runs first. On a
throwaway SQLite database this makes the keys and the registry's certificate bundle through
``registry_config``'s own code, starts Debian's ``docker-registry`` on loopback with that bundle (token
mode), and times ``accounts.registry.keys.preflight()`` BENCH_PREFLIGHT_RUNS times (default 30) after
one warm-up, then one whole scheduled check that rotates (``rotate_if_due`` with the key made old).

Results: median, p95 and max on stdout and in bench/output/preflight.json.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RUNS = int(os.environ.get("BENCH_PREFLIGHT_RUNS", "30"))


def main() -> None:
    if not shutil.which("docker-registry"):
        sys.exit("bench.preflight_bench needs docker-registry: apt-get install docker-registry")
    work = Path(tempfile.mkdtemp(prefix="registryadmin-preflight-"))
    os.environ.update(
        DJANGO_SETTINGS_MODULE="registryadmin.settings",
        DATABASE_URL=f"sqlite:///{work / 'bench.sqlite3'}",
        DATA_DIR=str(work / "data"),
        SECRET_KEY="preflight-bench-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        BOOTSTRAP_ON_MIGRATE="false",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    from accounts import services
    from accounts.models import KeyState, SigningKey
    from accounts.registry import config, keys
    from audit.context import AuditContext
    from tests.harness.registry import RegistryServer, deep_merge

    call_command("migrate", verbosity=0)
    context = AuditContext.system("bench")
    row = services.create_registry("registry", context=context)
    bundle, _secret = config.prepare_token(row, context)
    fragment = config.token_fragment("registry", bundle, "unused")
    (work / "registry").mkdir()
    registry = RegistryServer(workdir=work / "registry")
    registry.config = deep_merge(registry.config, {"auth": fragment["auth"]})
    with registry:
        services.update_registry(row, url=registry.url, context=context)
        assert all(result.ok for result in keys.preflight()), "the registry refused the next key"
        times = []
        for _ in range(RUNS):
            started = time.perf_counter()
            results = keys.preflight()
            times.append((time.perf_counter() - started) * 1000)
            assert results[0].ok, results[0].message
        current = SigningKey.objects.get(state=KeyState.CURRENT)
        SigningKey.objects.filter(pk=current.pk).update(activated_at=timezone.now() - timedelta(days=40))
        started = time.perf_counter()
        outcome = config.rotate_if_due(context)
        scheduled_ms = (time.perf_counter() - started) * 1000
        assert outcome.rotation is not None and outcome.rotation.promoted is not None, outcome.refusal
    times.sort()
    result = {
        "runs": RUNS,
        "preflight_median_ms": round(statistics.median(times), 2),
        "preflight_p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
        "preflight_max_ms": round(times[-1], 2),
        "scheduled_check_with_rotation_ms": round(scheduled_ms, 1),
    }
    out = ROOT / "bench" / "output"
    out.mkdir(exist_ok=True)
    (out / "preflight.json").write_text(json.dumps(result, indent=2))
    print(
        f"signing-key preflight against one docker-registry, {RUNS} runs: median {result['preflight_median_ms']} ms,"
        f" p95 {result['preflight_p95_ms']} ms, max {result['preflight_max_ms']} ms; a scheduled check that"
        f" rotates (preflight, promote, new key, bundle): {result['scheduled_check_with_rotation_ms']} ms"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
