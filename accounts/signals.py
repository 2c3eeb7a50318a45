"""Web sign-in successes and failures, from Django's own auth signals (web only).

Token-endpoint authentication is recorded in its ``access`` record instead.

Was ``accounts/signin.py`` before the layout split.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from audit.context import AuditContext
from audit.models import Kind, SubjectType
from audit.services import record


@receiver(user_logged_in, dispatch_uid="registryadmin.signin.success")
def record_signin(sender: Any, request: HttpRequest | None, user: Any, **_: Any) -> None:
    context = AuditContext.from_request(request) if request is not None else AuditContext()
    context = AuditContext(
        actor=user.get_username(),
        actor_id=user.pk,
        ip=context.ip,
        user_agent=context.user_agent,
        request_id=context.request_id,
    )
    record(Kind.SIGNIN, "success", context, subject_type=SubjectType.USER)


@receiver(user_login_failed, dispatch_uid="registryadmin.signin.failure")
def record_signin_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    # Django has already scrubbed the password out of ``credentials``.
    context = AuditContext.from_request(request) if request is not None else AuditContext()
    username = str(credentials.get("username", ""))[:150]
    context = AuditContext(actor=username, ip=context.ip, user_agent=context.user_agent, request_id=context.request_id)
    unavailable = getattr(request, "directory_unavailable", "")
    detail = {"reason": "directory_unavailable", "detail": unavailable} if unavailable else {}
    record(Kind.SIGNIN, "failure", context, subject_type=SubjectType.USER, detail=detail)
