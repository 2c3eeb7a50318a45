"""Filters over audit records, shared by the export command and (later) the audit pages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from audit.models import AuditRecord


@dataclass(frozen=True, slots=True)
class AuditFilter:
    since: datetime | None = None
    until: datetime | None = None
    kind: str | None = None
    outcome: str | None = None
    user: str | None = None
    repository: str | None = None

    def apply(self, queryset: QuerySet[AuditRecord] | None = None) -> QuerySet[AuditRecord]:
        queryset = AuditRecord.objects.all() if queryset is None else queryset
        lookups = {
            "time__gte": self.since,
            "time__lt": self.until,
            "kind": self.kind,
            "outcome": self.outcome,
            "actor": self.user,
            "repository": self.repository,
        }
        return queryset.filter(**{k: v for k, v in lookups.items() if v is not None})

    def describe(self) -> dict[str, str]:
        """The filter as plain strings, for recording who exported what."""
        return {
            name: value.isoformat() if isinstance(value, datetime) else value
            for name, value in (
                ("since", self.since),
                ("until", self.until),
                ("kind", self.kind),
                ("outcome", self.outcome),
                ("user", self.user),
                ("repository", self.repository),
            )
            if value is not None
        }
