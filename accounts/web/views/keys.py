"""The signing-key pages: every key's state and certificate expiry, and rotation with its preflight.

Overseers read; only admins rotate. Rotation is ``manage.py rotate_signing_key``'s own code
(``registry_config.rotate_after_preflight``): each token-mode registry with a URL is asked to accept
a token signed with the next key first, and a failure refuses the rotation (409) unless "rotate
anyway" (``--force``) is ticked. Each preflight is kept in the audit log; the page shows the last one.

Was ``accounts/key_views.py`` before the layout split.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.models import AuthMode, KeyState, Registry, SigningKey
from accounts.registry.config import PREFLIGHT_ACTION, REFUSED_ACTION, Rotation, rotate_after_preflight
from audit.context import AuditContext
from audit.models import AuditRecord, Kind
from registryadmin.guards import admin_required, is_admin, overseer_required
from registryadmin.paging import page_of

EXPIRY_WARNING = timedelta(days=30)
STATE_ORDER = (KeyState.NEXT, KeyState.CURRENT, KeyState.PREVIOUS, KeyState.RETIRED)


class KeyFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=[("", "any"), *KeyState.choices])


class RotateForm(forms.Form):
    force = forms.BooleanField(
        label="Rotate anyway, even if a registry fails the preflight (--force)",
        required=False,
        help_text="Only when you know every registry has loaded the current bundle: otherwise it refuses every "
        "token until it is restarted with the new bundle.",
    )


def _keys(form: KeyFilterForm) -> QuerySet[SigningKey]:
    order = Case(*(When(state=s, then=Value(i)) for i, s in enumerate(STATE_ORDER)), output_field=IntegerField())
    found = SigningKey.objects.defer("private_key", "certificate").order_by(order, "-created_at", "-id")
    if not form.is_valid():
        return found.none()
    if state := form.cleaned_data["state"]:
        found = found.filter(state=state)
    return found


PREFLIGHT_LOOKBACK = timedelta(days=90)


def _last_preflight() -> AuditRecord | None:
    """The latest preflight of the past 90 days (bounded: the JSON filter has no index of its own)."""
    since = timezone.now() - PREFLIGHT_LOOKBACK
    records = AuditRecord.objects.filter(kind=Kind.CREDENTIAL, time__gte=since, detail__action=PREFLIGHT_ACTION)
    return records.order_by("-time", "-id").first()


def _schedule(now: datetime) -> dict[str, Any]:
    """The scheduled rotation: the current key's age, when it is due, and a refusal newer than the last rotation."""
    current = SigningKey.objects.filter(state=KeyState.CURRENT).only("activated_at", "created_at").first()
    if current is None:
        return {}
    since = timezone.now() - PREFLIGHT_LOOKBACK
    refusal = (
        AuditRecord.objects.filter(kind=Kind.CREDENTIAL, time__gte=since, detail__action=REFUSED_ACTION)
        .filter(time__gte=current.activated_at or current.created_at)
        .order_by("-time", "-id")
        .first()
    )
    started = current.activated_at or current.created_at
    return {
        "max_age_days": settings.SIGNING_KEY_MAX_AGE_DAYS,
        "age_days": (now - started).days,
        "due_at": started + timedelta(days=settings.SIGNING_KEY_MAX_AGE_DAYS),
        "refusal": refusal,
        "without_preflight": settings.ROTATE_WITHOUT_PREFLIGHT,
    }


def _key_page(request: HttpRequest, *, status: int = 200, rotation: Rotation | None = None) -> HttpResponse:
    form = KeyFilterForm(request.GET)
    now = timezone.now()
    context: dict[str, Any] = {
        "schedule": _schedule(now),
        "form": form,
        "page": page_of(request, _keys(form)),
        "now": now,
        "soon": now + EXPIRY_WARNING,
        "last_preflight": _last_preflight(),
        "registries": Registry.objects.filter(auth_mode=AuthMode.TOKEN).order_by("service"),
        "is_admin": is_admin(request.user),
        "rotation": rotation,
        "rotate_form": RotateForm(),
    }
    return render(request, "keys/list.html", context, status=status if form.is_valid() else 400)


@require_GET
@overseer_required
def key_list(request: HttpRequest) -> HttpResponse:
    return _key_page(request)


@require_POST
@admin_required
def key_rotate(request: HttpRequest) -> HttpResponse:
    """Refused (409, with each registry's answer and the remedy) when the preflight fails and force is off."""
    form = RotateForm(request.POST)
    force = form.is_valid() and form.cleaned_data["force"]
    rotation = rotate_after_preflight(AuditContext.from_request(request), force=force)
    if rotation.promoted is None:
        return _key_page(request, status=409, rotation=rotation)
    messages.success(request, f"Rotated: the current signing key is now {rotation.promoted.kid}.")
    for result in rotation.preflight:
        if result.ok is not True:
            messages.warning(request, result.message)
    for service, bundle in rotation.rewritten:
        messages.warning(request, f"Rewrote {bundle}: copy it to {service} if needed and restart it.")
    messages.warning(request, "Restart every registry with the new bundle before the next rotation.")
    return redirect("keys:list")
