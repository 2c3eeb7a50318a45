"""The access review pages' forms: starting a campaign, filtering its checklist, answering an item, exporting."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from accounts import services

ADMINS = services.reviews.ADMINS


class StartReviewForm(forms.Form):
    """An admin names a campaign and gives its reviewers ``days`` days."""

    name = forms.CharField(max_length=100, strip=True)
    days = forms.IntegerField(
        min_value=1, max_value=services.reviews.MAX_DAYS, label="Days to answer", help_text="Then it escalates."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {"name": f"Access review {timezone.now():%Y-%m-%d}", "days": settings.ACCESS_REVIEW_DEADLINE_DAYS},
        )
        super().__init__(*args, **kwargs)

    def clean_name(self) -> str:
        return services.reviews.check_name(self.cleaned_data["name"])


class ItemFilterForm(forms.Form):
    """Which items of the checklist: by state and by team (``(admins)``: the items only admins answer)."""

    STATES = [("waiting", "Waiting"), ("escalated", "Escalated, waiting"), ("answered", "Answered"), ("all", "All")]

    state = forms.ChoiceField(required=False, choices=STATES)
    team = forms.ChoiceField(required=False, choices=())

    def __init__(self, data: Any, *, teams: list[str], default_state: str) -> None:
        data = data.copy()
        data.setdefault("state", default_state)  # bound either way, so the select shows what is listed
        super().__init__(data)
        self.default_state = default_state
        self.fields["team"].choices = [("", "Every team"), *((name or ADMINS, name or ADMINS) for name in teams)]

    def apply(self, items: Any) -> Any:
        state = self.cleaned_data["state"] or self.default_state
        if state == "waiting":
            items = items.filter(decision="")
        elif state == "escalated":
            items = items.filter(decision="", escalated_at__isnull=False)
        elif state == "answered":
            items = items.exclude(decision="")
        if team := self.cleaned_data["team"]:
            items = items.filter(Q(team_name="") if team == ADMINS else Q(team_name=team))
        return items


class AnswerForm(forms.Form):
    """The optional note beside a certify or revoke, and the checklist page to go back to."""

    note = forms.CharField(required=False, max_length=500, strip=True)
    next = forms.CharField(required=False, max_length=2000)


class ExportForm(forms.Form):
    format = forms.ChoiceField(required=False, choices=[("csv", "CSV"), ("jsonl", "JSONL")])
