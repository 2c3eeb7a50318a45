"""The audit filter's outcome=refused: every outcome that refused the client (issue 20, item 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.utils import timezone

from audit.charts import attempts_chart
from audit.filters import REFUSED, REFUSED_OUTCOMES, AuditFilter, parse_filter
from audit.models import AuditRecord
from tests.audit.test_pages import rollup

pytestmark = pytest.mark.django_db


def test_refused_matches_every_refusing_outcome_and_nothing_else() -> None:
    query = str(AuditFilter(outcome=REFUSED).apply(AuditRecord.objects.all()).query)
    for outcome in REFUSED_OUTCOMES:
        assert f"'{outcome}'" in query or outcome in query
    assert "granted" not in query


def test_a_plain_outcome_still_filters_on_itself() -> None:
    query = str(AuditFilter(outcome="denied").apply(AuditRecord.objects.all()).query)
    assert "denied" in query and "auth_failed" not in query


@pytest.mark.parametrize("fine", [False, True], ids=["hourly rollups", "fine rollups (by user)"])
def test_the_chart_of_refused_attempts_counts_the_refusing_outcomes_from_the_rollups(fine: bool) -> None:
    start = datetime(2026, 4, 1, tzinfo=UTC)
    counts = {"granted": 40, "probe": 6, "denied": 5, "partial": 3, "auth_failed": 2, "limited": 1}
    for outcome, count in counts.items():
        rollup(start, outcome, count)
    query = {"since": "2026-04-01", "until": "2026-04-01T12:00Z", "outcome": "refused", "kind": "access"}
    chart = attempts_chart(parse_filter(query | ({"user": "carol"} if fine else {})), timezone.now())
    assert chart.source == "rollups"
    assert {outcome: total for outcome, total, _css in chart.totals} == {
        "denied": 5,
        "partial": 3,
        "auth_failed": 2,
        "limited": 1,
    }
