"""Processes writing audit rows at once never fail ("database is locked" on SQLite)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from audit.models import AuditRecord
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e

WRITER = """
import django; django.setup()
from django.db import transaction
from audit.context import AuditContext
from audit.services import record
for i in range(150):
    with transaction.atomic():
        record("access", "granted", AuditContext(actor="w{n}-" + str(i)), repository="web/app")
print("ok")
"""


def test_concurrent_writers_wait_for_each_other(subprocess_env: dict[str, str]) -> None:
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER.replace("{n}", str(n))],
            cwd=REPO_ROOT,
            env=subprocess_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    results = [w.communicate(timeout=120) for w in writers]
    for (out, err), writer in zip(results, writers, strict=True):
        assert writer.returncode == 0, err[-2000:]
        assert out.strip() == "ok"
    assert AuditRecord.objects.count() == 450
