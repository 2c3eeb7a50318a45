"""Who may open a page at all: the role checks every dashboard view starts with.

Two roles see beyond their own access: administrators (superusers) change anything,
auditors read everything and change nothing. Pages that only show state use
``overseer_required``; every view that changes state for someone else uses
``admin_required`` (team leads are checked by the services, per team).
Anonymous visitors go to the sign-in page; signed-in users without the role get 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

View = Callable[..., HttpResponse]


def is_admin(user: Any) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


def is_overseer(user: Any) -> bool:
    """Admins and auditors: they may look at anyone's access and every log."""
    return bool(user.is_authenticated and user.is_active and (user.is_superuser or getattr(user, "is_auditor", False)))


def _guard(check: Callable[[Any], bool], refusal: str) -> Callable[[View], View]:
    def decorate(view: View) -> View:
        @wraps(view)
        @login_required
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not check(request.user):
                raise PermissionDenied(refusal)
            return view(request, *args, **kwargs)

        return guarded

    return decorate


overseer_required = _guard(is_overseer, "Only administrators and auditors may see this page.")
admin_required = _guard(is_admin, "Only administrators may do this.")
