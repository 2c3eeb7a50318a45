"""Django's admin, as an interim management UI: every save goes through the services."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from accounts import services
from accounts.models import (
    Grant,
    Membership,
    PersonalAccessToken,
    Registry,
    Repository,
    Robot,
    SigningKey,
    Team,
    User,
)
from audit.context import AuditContext


def _ctx(request: HttpRequest) -> AuditContext:
    return AuditContext.from_request(request)


def _adopt(obj: Any, saved: Any) -> None:
    """Let the admin carry on with the object the service saved."""
    obj.pk = saved.pk
    obj._state.adding = False


class ServiceAdmin(admin.ModelAdmin):
    """Route add/change/delete (single and bulk) through service functions."""

    def create(self, request: HttpRequest, obj: Any, form: Any) -> Any:
        raise NotImplementedError

    def update(self, request: HttpRequest, obj: Any, form: Any) -> None:
        raise NotImplementedError

    def remove(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if change:
            self.update(request, obj, form)
        else:
            _adopt(obj, self.create(request, obj, form))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.remove(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.remove(request, obj)


@admin.register(User)
class UserAdmin(ServiceAdmin, DjangoUserAdmin):
    list_display = ("username", "email", "is_active", "is_superuser", "is_auditor", "last_login")
    list_filter = ("is_active", "is_superuser", "is_auditor")
    fieldsets = (
        (None, {"fields": ("username", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name", "email")}),
        ("Access", {"fields": ("is_active", "is_superuser", "is_auditor", "catalog_access")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    readonly_fields = ("last_login", "date_joined")
    actions = ["delete_selected", "revoke_refresh_tokens"]

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> tuple[str, ...]:
        """A directory user's name, email, names and password follow the directory (README "Directory users")."""
        if obj is not None and obj.directory_dn:
            return (*self.readonly_fields, *services.DIRECTORY_FIELDS, "password")
        return tuple(self.readonly_fields)

    @admin.action(description="Revoke refresh tokens (sign out of docker login)")
    def revoke_refresh_tokens(self, request: HttpRequest, queryset: QuerySet) -> None:
        total = sum(services.revoke_user_refresh_tokens(user, context=_ctx(request)) for user in queryset)
        messages.success(request, f"Revoked {total} refresh token(s).")

    def create(self, request: HttpRequest, obj: User, form: Any) -> User:
        password = form.cleaned_data.get("password1") if form.cleaned_data.get("usable_password", True) else None
        return services.create_user(
            obj.username, email=obj.email, password=password or None, validate=False, context=_ctx(request)
        )

    def update(self, request: HttpRequest, obj: User, form: Any) -> None:
        changes = {f: getattr(obj, f) for f in form.changed_data if f in services.USER_FIELDS}
        services.update_user(obj, context=_ctx(request), **changes)

    def remove(self, request: HttpRequest, obj: User) -> None:
        services.delete_user(obj, context=_ctx(request))

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        target = self.get_object(request, unquote(id))
        if target is not None and target.directory_dn:
            messages.error(request, f"{target.username} signs in with their directory password; change it there.")
            return HttpResponseRedirect(reverse("admin:accounts_user_change", args=(target.pk,)))
        user = target if request.method == "POST" else None
        if user is None or not self.has_change_permission(request, user):
            return super().user_change_password(request, id, form_url)
        form = self.change_password_form(user, request.POST)
        if not form.is_valid():
            return super().user_change_password(request, id, form_url)
        if form.cleaned_data.get("set_usable_password", True):
            services.set_password(user, form.cleaned_data["password1"], validate=False, context=_ctx(request))
            messages.success(request, "Password changed successfully.")
        else:
            services.disable_password(user, context=_ctx(request))
            messages.success(request, "Password-based authentication was disabled.")
        update_session_auth_hash(request, user)
        return HttpResponseRedirect(reverse("admin:accounts_user_change", args=(user.pk,)))


@admin.register(Team)
class TeamAdmin(ServiceAdmin):
    list_display = ("name", "description")
    search_fields = ("name",)

    def get_readonly_fields(self, request: HttpRequest, obj: Team | None = None) -> tuple[str, ...]:
        return ("name",) if obj else ()

    def create(self, request: HttpRequest, obj: Team, form: Any) -> Team:
        return services.create_team(obj.name, description=obj.description, context=_ctx(request))

    def update(self, request: HttpRequest, obj: Team, form: Any) -> None:
        services.update_team(obj, description=obj.description, context=_ctx(request))

    def remove(self, request: HttpRequest, obj: Team) -> None:
        services.delete_team(obj, context=_ctx(request))


@admin.register(Membership)
class MembershipAdmin(ServiceAdmin):
    list_display = ("team", "user", "role")
    list_filter = ("role", "team")
    list_select_related = ("team", "user")

    def create(self, request: HttpRequest, obj: Membership, form: Any) -> Membership:
        return services.set_membership(obj.team, obj.user, obj.role, context=_ctx(request))

    def update(self, request: HttpRequest, obj: Membership, form: Any) -> None:
        services.set_membership(obj.team, obj.user, obj.role, context=_ctx(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> tuple[str, ...]:
        return ("team", "user") if obj else ()

    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        """A membership only directory groups give is ended in the directory, never here (bulk deletes: 403)."""
        if obj is not None and not obj.local_role:
            return False
        return super().has_delete_permission(request, obj)

    def remove(self, request: HttpRequest, obj: Membership) -> None:
        services.remove_membership(obj, context=_ctx(request))


@admin.register(Registry)
class RegistryAdmin(ServiceAdmin):
    list_display = ("service", "url", "auth_mode")

    def create(self, request: HttpRequest, obj: Registry, form: Any) -> Registry:
        return services.create_registry(obj.service, url=obj.url, auth_mode=obj.auth_mode, context=_ctx(request))

    def update(self, request: HttpRequest, obj: Registry, form: Any) -> None:
        services.update_registry(obj, context=_ctx(request), **{f: getattr(obj, f) for f in form.changed_data})

    def remove(self, request: HttpRequest, obj: Registry) -> None:
        services.delete_registry(obj, context=_ctx(request))


@admin.register(Repository)
class RepositoryAdmin(ServiceAdmin):
    list_display = ("name", "registry", "public")
    list_filter = ("public",)
    search_fields = ("name",)

    def get_readonly_fields(self, request: HttpRequest, obj: Repository | None = None) -> tuple[str, ...]:
        return ("name", "registry") if obj else ()

    def create(self, request: HttpRequest, obj: Repository, form: Any) -> Repository:
        return services.create_repository(obj.name, public=obj.public, registry=obj.registry, context=_ctx(request))

    def update(self, request: HttpRequest, obj: Repository, form: Any) -> None:
        services.set_repository_public(obj, obj.public, context=_ctx(request))

    def remove(self, request: HttpRequest, obj: Repository) -> None:
        services.delete_repository(obj, context=_ctx(request))


@admin.register(Grant)
class GrantAdmin(ServiceAdmin):
    list_display = ("pattern", "role", "user", "team", "registry", "expires_at", "managed_by")
    list_filter = ("role",)
    search_fields = ("pattern", "user__username", "team__name")
    list_select_related = ("user", "team", "registry", "managed_by")

    def get_readonly_fields(self, request: HttpRequest, obj: Grant | None = None) -> tuple[str, ...]:
        return ("pattern", "user", "team", "registry", "managed_by", "created_by", "created_at") if obj else ()

    def create(self, request: HttpRequest, obj: Grant, form: Any) -> Grant:
        return services.create_grant(
            obj.user or obj.team,
            obj.pattern,
            obj.role,
            registry=obj.registry,
            expires_at=obj.expires_at,
            managed_by=obj.managed_by,
            context=_ctx(request),
        )

    def update(self, request: HttpRequest, obj: Grant, form: Any) -> None:
        services.update_grant(obj, role=obj.role, expires_at=obj.expires_at, context=_ctx(request))

    def remove(self, request: HttpRequest, obj: Grant) -> None:
        services.revoke_grant(obj, context=_ctx(request))


class CredentialAdmin(ServiceAdmin):
    """Credentials are created (secret shown once) and revoked, never edited or deleted."""

    actions = ["revoke"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the audit trail keeps naming the credential

    def revoke_one(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    @admin.action(description="Revoke the selected credentials")
    def revoke(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.revoke_one(request, obj)


@admin.register(Robot)
class RobotAdmin(CredentialAdmin):
    list_display = ("__str__", "team", "expires_at", "revoked_at", "last_used_at", "last_used_ip")
    list_select_related = ("team",)
    fields = ("team", "name", "description", "expires_at")

    def create(self, request: HttpRequest, obj: Robot, form: Any) -> Robot:
        robot, secret = services.create_robot(
            obj.team, obj.name, expires_at=obj.expires_at, description=obj.description, context=_ctx(request)
        )
        messages.warning(request, f"Secret for {robot.login_name} (shown only now): {secret}")
        return robot

    def revoke_one(self, request: HttpRequest, obj: Robot) -> None:
        services.revoke_robot(obj, context=_ctx(request))


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(CredentialAdmin):
    list_display = ("__str__", "read_only", "patterns", "expires_at", "revoked_at", "last_used_at")
    list_select_related = ("user",)
    fields = ("user", "name", "read_only", "patterns", "expires_at")

    def create(self, request: HttpRequest, obj: PersonalAccessToken, form: Any) -> PersonalAccessToken:
        token, secret = services.create_access_token(
            obj.user,
            obj.name,
            read_only=obj.read_only,
            patterns=obj.patterns or [],
            expires_at=obj.expires_at,
            context=_ctx(request),
        )
        messages.warning(request, f"Token {token} (shown only now): {secret}")
        return token

    def revoke_one(self, request: HttpRequest, obj: PersonalAccessToken) -> None:
        services.revoke_access_token(obj, context=_ctx(request))


@admin.register(SigningKey)
class SigningKeyAdmin(admin.ModelAdmin):
    """Read-only: rotate with `manage.py rotate_signing_key` (it runs the preflight)."""

    list_display = ("kid", "state", "created_at", "activated_at", "not_after")
    fields = ("kid", "state", "created_at", "activated_at", "retired_at", "not_after", "certificate")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: SigningKey | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: SigningKey | None = None) -> bool:
        return False
