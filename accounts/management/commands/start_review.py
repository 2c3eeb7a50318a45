"""``manage.py start_review [--name N] [--days D]``: start an access review now, as the schedule does."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts import services
from audit.context import AuditContext


class Command(BaseCommand):
    help = (
        "Freeze every grant, team membership and robot into a new access review: each team's leads get "
        "their team's items (and a mail), admins what no team manages. Unanswered items escalate to the "
        "admins after --days days (default ACCESS_REVIEW_DEADLINE_DAYS)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default="", help="the review's name (default: Access review <today>)")
        parser.add_argument("--days", default=None, help="days until the deadline (1-365)")

    def handle(self, *args: Any, name: str, days: str | None, **_: Any) -> None:
        name = name or f"Access review {timezone.now():%Y-%m-%d}"
        try:
            started = services.reviews.start_campaign(
                name,
                days=settings.ACCESS_REVIEW_DEADLINE_DAYS if days is None else days,
                context=AuditContext.system("manage.py start_review"),
            )
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        campaign, counts = started.campaign, started.counts
        self.stdout.write(
            f"started review #{campaign.pk} {campaign.name!r}, deadline {campaign.deadline:%Y-%m-%d %H:%M} UTC: "
            f"{counts['items']} items ({counts['grants']} grants, {counts['memberships']} memberships, "
            f"{counts['robots']} robots) for {counts['teams']} teams and {counts['for_admins']} for admins; "
            f"{started.mailed} lead(s) mailed"
        )
