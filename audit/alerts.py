"""Alerts for the admin home: bursts of failed sign-ins for one user or from one address."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Q
from django.utils import timezone

from audit.models import AuditRecord, Kind

WINDOW = timedelta(minutes=15)
THRESHOLD = 5


@dataclass(frozen=True)
class Burst:
    by: str  # "user" or "ip"
    value: str
    failures: int
    since: datetime


def failed_login_bursts(
    now: datetime | None = None, window: timedelta = WINDOW, threshold: int = THRESHOLD
) -> list[Burst]:
    """Users and addresses with at least ``threshold`` failed sign-ins (web or registry) in ``window``."""
    since = (now or timezone.now()) - window
    failures = (
        AuditRecord.objects.filter(time__gte=since)
        .filter(Q(kind=Kind.SIGNIN, outcome="failure") | Q(kind=Kind.ACCESS, outcome="auth_failed"))
        .exclude(detail__has_key="retry_of")
    )  # containerd's GET retry of a refused POST is the same attempt
    bursts = []
    # exclude(ip="") would compare an IP column with "" (NULL on some backends): test presence per field.
    for field, label, present in (("actor", "user", ~Q(actor="")), ("ip", "ip", Q(ip__isnull=False))):
        rows = failures.filter(present).values(field).annotate(n=Count("id")).filter(n__gte=threshold)
        bursts += [Burst(label, str(row[field]), row["n"], since) for row in rows.order_by("-n")[:20]]
    return bursts
