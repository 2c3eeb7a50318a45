"""The doctor's ``Target`` for a registry, built the same way for ``manage.py doctor``, its page and the daily job."""

from __future__ import annotations

from pathlib import Path

from accounts.constants import ACTIONS
from accounts.models import Registry
from accounts.registry.doctor.model import Target


class NoTarget(ValueError):
    """The doctor cannot run on this registry as asked (no URL anywhere, half a question); the message says why."""


def target_for(
    registry: Registry,
    url: str | None = None,
    *,
    origin: str = "",
    registry_config: Path | None = None,
    user: str = "",
    repository: str = "",
    action: str = "pull",
) -> Target:
    """Probe ``url`` (a proxy's or balancer's address) or else the registry's own URL; ``NoTarget`` without either."""
    if bool(user) != bool(repository):
        raise NoTarget("a user and a repository go together (--user U --repository R)")
    if action not in ACTIONS:
        raise NoTarget(f"the action is one of {', '.join(ACTIONS)}")
    direct = registry.url or url or ""
    if not direct:
        where = "set it on its page (or in the admin), or give one to probe (--url)"
        raise NoTarget(f"registry {registry.service} has no URL: {where}")
    return Target(
        registry=registry,
        url=(url or direct).rstrip("/"),
        direct_url=direct.rstrip("/"),
        origin=origin,
        registry_config=registry_config,
        user=user,
        repository=repository,
        action=action,
    )
