"""Who did something, and from where: passed explicitly to every service."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest


@dataclass(frozen=True, slots=True)
class AuditContext:
    """The request facts an audit record freezes, detached from the request."""

    actor: str = ""
    actor_id: int | None = None
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> AuditContext:
        user = getattr(request, "user", None)
        authenticated = bool(user is not None and user.is_authenticated)
        return cls(
            actor=user.get_username() if authenticated else "",
            actor_id=user.pk if authenticated else None,
            ip=getattr(request, "client_ip", "") or None,
            user_agent=request.headers.get("User-Agent", "")[:512],
            request_id=getattr(request, "request_id", ""),
        )

    @classmethod
    def system(cls, name: str = "system") -> AuditContext:
        """For Celery tasks, management commands and migrations."""
        return cls(actor=name)

    @classmethod
    def for_user(cls, user: object, **extra: object) -> AuditContext:
        return cls(actor=user.get_username(), actor_id=user.pk, **extra)  # type: ignore[attr-defined]
