"""The append-only audit store: one table for every kind of record."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class Kind(models.TextChoices):
    ACCESS = "access", "Access attempt"
    REGISTRY_EVENT = "registry_event", "Registry event"
    ADMIN_CHANGE = "admin_change", "Admin change"
    SIGNIN = "signin", "Web sign-in"
    CREDENTIAL = "credential", "Credential"
    JOB = "job", "Scheduled job"


class SubjectType(models.TextChoices):
    USER = "user", "User"
    ROBOT = "robot", "Robot"
    TOKEN = "token", "Personal access token"
    ANONYMOUS = "anonymous", "Anonymous"
    SYSTEM = "system", "System"


class AppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit record."""


class AuditRecordQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise AppendOnlyError("audit records are append-only")

    def delete(self):
        raise AppendOnlyError("audit records are append-only; retention drops whole segments")


class AuditRecord(models.Model):
    """One thing that happened: an access attempt, a registry event, an admin change...

    Records are written in the same transaction as the change they describe and
    never updated. ``actor`` freezes the username; ``actor_id`` keeps the user id
    without a foreign key, so deleting a user never touches the log.
    ``actions`` (access records) is a list of
    ``{"type", "name", "requested", "granted", "denied"}`` per requested scope.
    ``detail`` holds kind-specific data (before/after for admin changes), never a secret.
    """

    time = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    outcome = models.CharField(max_length=20)
    actor = models.CharField(max_length=255, blank=True)
    actor_id = models.BigIntegerField(null=True, blank=True)
    subject_type = models.CharField(max_length=20, choices=SubjectType.choices, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    registry = models.CharField(max_length=255, blank=True)
    repository = models.CharField(max_length=255, blank=True)
    actions = models.JSONField(default=list, blank=True)
    detail = models.JSONField(default=dict, blank=True)

    objects = AuditRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["time"], name="audit_time"),
            models.Index(fields=["kind", "time"], name="audit_kind_time"),
            models.Index(fields=["actor", "time"], name="audit_actor_time"),
            models.Index(fields=["repository", "time"], name="audit_repo_time"),
            models.Index(fields=["outcome", "time"], name="audit_outcome_time"),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.kind} {self.outcome} {self.actor or '-'}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not self._state.adding:
            raise AppendOnlyError("audit records are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("audit records are append-only")


class SeenEvent(models.Model):
    """Registry notification ids already stored: the registry retries, so events repeat."""

    event_id = models.CharField(max_length=100, primary_key=True)
    received_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.event_id


class BlobEventCount(models.Model):
    """Blob-level registry events, counted per registry, repository, action and day, not stored one by one."""

    registry = models.CharField(max_length=255)
    repository = models.CharField(max_length=255)
    action = models.CharField(max_length=20)
    day = models.DateField()
    count = models.BigIntegerField(default=0)
    bytes = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["registry", "repository", "action", "day"], name="blob_count_unique")
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.registry}/{self.repository} {self.action}: {self.count}"
