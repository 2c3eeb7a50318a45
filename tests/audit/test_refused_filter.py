"""The audit filter's outcome=refused: every outcome that refused the client (issue 20, item 2)."""

from __future__ import annotations

import pytest

from audit.filters import REFUSED, REFUSED_OUTCOMES, AuditFilter
from audit.models import AuditRecord

pytestmark = pytest.mark.django_db


def test_refused_matches_every_refusing_outcome_and_nothing_else() -> None:
    query = str(AuditFilter(outcome=REFUSED).apply(AuditRecord.objects.all()).query)
    for outcome in REFUSED_OUTCOMES:
        assert f"'{outcome}'" in query or outcome in query
    assert "granted" not in query


def test_a_plain_outcome_still_filters_on_itself() -> None:
    query = str(AuditFilter(outcome="denied").apply(AuditRecord.objects.all()).query)
    assert "denied" in query and "auth_failed" not in query
