"""Registries and the repositories in them, including those first seen in a registry event."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q

from accounts.access.patterns import InvalidName, validate_repository_name
from accounts.models import AuthMode, Registry, Repository
from accounts.registry import htpasswd
from accounts.services._common import _clean_repository
from audit.context import AuditContext
from audit.services import record_change


@transaction.atomic
def create_registry(service: str, *, context: AuditContext, url: str = "", auth_mode: str = AuthMode.TOKEN) -> Registry:
    registry = Registry(service=service, url=url.rstrip("/"), auth_mode=auth_mode)
    registry.full_clean()
    registry.save()
    record_change(context, "registry.create", service, after={"url": registry.url, "auth_mode": auth_mode})
    htpasswd.sync_after_commit()  # an htpasswd registry must never find its file missing
    return registry


@transaction.atomic
def update_registry(registry: Registry, *, context: AuditContext, **changes: Any) -> Registry:
    allowed = {"service", "url", "auth_mode"}
    if set(changes) - allowed:
        raise ValueError(f"update_registry cannot change {', '.join(sorted(set(changes) - allowed))}")
    registry = Registry.objects.select_for_update().get(pk=registry.pk)
    before = {field: getattr(registry, field) for field in allowed}
    for field, value in changes.items():
        setattr(registry, field, value)
    registry.full_clean()
    after = {field: getattr(registry, field) for field in allowed}
    if before != after:
        registry.save()
        record_change(context, "registry.update", registry.service, before=before, after=after)
        htpasswd.sync_after_commit()
    return registry


@transaction.atomic
def delete_registry(registry: Registry, *, context: AuditContext) -> None:
    state = {"service": registry.service, "url": registry.url, "auth_mode": registry.auth_mode}
    registry.delete()
    record_change(context, "registry.delete", state["service"], before=state)


@transaction.atomic
def create_repository(
    name: str, *, context: AuditContext, public: bool = False, registry: Registry | None = None
) -> Repository:
    name = _clean_repository(name)
    if Repository.objects.filter(name=name, registry=registry).exists():
        raise ValidationError({"name": f"Repository {name!r} already exists."})
    repository = Repository.objects.create(name=name, public=public, registry=registry)
    record_change(
        context,
        "repository.create",
        name,
        after={"public": public, "registry": registry.service if registry else None},
        repository=name,
    )
    return repository


@transaction.atomic
def set_repository_public(repository: Repository, public: bool, *, context: AuditContext) -> Repository:
    repository = Repository.objects.select_for_update().get(pk=repository.pk)
    if repository.public != public:
        before = repository.public
        repository.public = public
        repository.save(update_fields=["public"])
        record_change(
            context,
            "repository.update",
            repository.name,
            before={"public": before},
            after={"public": public},
            repository=repository.name,
        )
    return repository


@transaction.atomic
def delete_repository(repository: Repository, *, context: AuditContext) -> None:
    state = {"name": repository.name, "public": repository.public}
    repository.delete()
    record_change(context, "repository.delete", state["name"], before=state, repository=state["name"])


@transaction.atomic
def ensure_repository(name: str, registry: Registry, *, context: AuditContext) -> Repository | None:
    """Make the row for a repository first seen in a registry event (pushes need none beforehand)."""
    try:
        validate_repository_name(name)
    except InvalidName:
        return None
    if Repository.objects.filter(name=name).filter(Q(registry=registry) | Q(registry__isnull=True)).exists():
        return None
    repository = Repository.objects.create(name=name, registry=registry)
    record_change(
        context,
        "repository.discover",
        name,
        after={"registry": registry.service},
        repository=name,
        registry=registry.service,
    )
    return repository
