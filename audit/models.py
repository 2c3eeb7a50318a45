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
    # Tamper evidence: ``segment`` is "<kind>:<UTC day>" (the unit of retention and of
    # chaining); ``mac`` is an HMAC of the frozen fields under AUDIT_HMAC_KEY, made at write;
    # ``key_id`` names that key (``audit.chain.key_id``), NULL for records made before key ids.
    # Nullable: a NOT NULL column would make SQLite copy the whole table to add it.
    segment = models.CharField(max_length=40, blank=True)
    mac = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=16, null=True, blank=True)  # noqa: DJ001

    objects = AuditRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["time"], name="audit_time"),
            models.Index(fields=["kind", "time"], name="audit_kind_time"),
            models.Index(fields=["actor", "time"], name="audit_actor_time"),
            models.Index(fields=["repository", "time"], name="audit_repo_time"),
            models.Index(fields=["outcome", "time"], name="audit_outcome_time"),
            models.Index(fields=["segment", "id"], name="audit_segment_id"),
            # Measured at 10M rows: an IP search with few matches scanned the whole time index.
            models.Index(fields=["ip", "time"], name="audit_ip_time"),
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


class AuditSeal(models.Model):
    """A record's place in its segment's hash chain, written by the sealer shortly after commit.

    ``chain`` = HMAC(key, previous chain + record mac + seq): removing, reordering or
    re-inserting records breaks it; nobody without AUDIT_HMAC_KEY can re-seal.
    ``key_id`` names the key of ``chain`` on the first seal each sealing transaction appends to
    the segment; NULL on the others means the key of the seal before (before key ids: any key).
    """

    record_id = models.BigIntegerField(primary_key=True)
    segment = models.CharField(max_length=40)
    seq = models.BigIntegerField()
    chain = models.CharField(max_length=64)
    sealed_at = models.DateTimeField(default=timezone.now)
    key_id = models.CharField(max_length=16, null=True, blank=True)  # noqa: DJ001 (nullable: as on AuditRecord)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["segment", "seq"], name="audit_seal_segment_seq")]

    def __str__(self) -> str:
        return f"{self.segment}#{self.seq}"


class AuditSegment(models.Model):
    """The head of one segment's chain; a dropped segment keeps a keyed checkpoint of what went.

    Segments are themselves linked, in the order the sealer created them: ``position`` in the
    chain of segments, the ``previous`` segment's name and ``link`` = HMAC(position, name,
    previous name, previous link). Removing a whole segment (records, seals and this row)
    leaves a gap that the next segment names; ``AuditSegmentChain`` keys the newest link.
    ``position`` is empty only until the sealer links the segment (rows from before the chain).
    ``key_id`` names the key of ``checkpoint``, ``link_key_id`` that of ``link`` (blank: made
    before key ids).
    """

    name = models.CharField(max_length=40, primary_key=True)
    count = models.BigIntegerField(default=0)
    head = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    dropped_at = models.DateTimeField(null=True, blank=True)
    checkpoint = models.CharField(max_length=64, blank=True)
    position = models.BigIntegerField(null=True, blank=True)
    previous = models.CharField(max_length=40, blank=True)
    link = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=16, blank=True, default="", db_default="")
    link_key_id = models.CharField(max_length=16, blank=True, default="", db_default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["position"], name="audit_segment_position")]

    def __str__(self) -> str:
        return self.name


class AuditSegmentChain(models.Model):
    """The newest link of the chain of segments (one row), with a keyed checkpoint.

    It outlives every segment it counts: removing the newest segments, or every record,
    seal and segment, leaves it pointing at a segment that is gone. Only the sealer writes it.
    ``key_id`` names the key of ``checkpoint`` (blank: made before key ids).
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    count = models.BigIntegerField(default=0)
    segment = models.CharField(max_length=40, blank=True)
    link = models.CharField(max_length=64, blank=True)
    checkpoint = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=16, blank=True, default="", db_default="")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="audit_segment_chain_single_row")]

    def __str__(self) -> str:
        return f"{self.count} segments, newest {self.segment or '-'}"


class AuditVerification(models.Model):
    """One run of verify_audit: shown to auditors and admins."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=20)  # intact | tampered | error
    checked = models.BigIntegerField(default=0)
    problem = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M} {self.outcome}"


class AuditRollup(models.Model):
    """Counts per hour for charts and top lists, kept current by the sealer (each record once)."""

    hour = models.DateTimeField()
    kind = models.CharField(max_length=20)
    outcome = models.CharField(max_length=20)
    registry = models.CharField(max_length=255, blank=True)
    repository = models.CharField(max_length=255, blank=True)
    actor = models.CharField(max_length=255, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    count = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["hour", "kind"], name="audit_rollup_hour_kind"),
            # One repository's pulls per day on its page: a few rows per hour instead of every pull record.
            models.Index(fields=["repository", "kind", "outcome", "hour"], name="audit_rollup_repository"),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.kind} {self.outcome}: {self.count}"


class AuditHourly(models.Model):
    """Counts per hour, kind, outcome and registry only: a few rows per hour, for the chart.

    ``AuditRollup`` keeps actor, repository and address too (for top lists and narrow
    charts) and so grows nearly as large as the records at high cardinality.
    """

    hour = models.DateTimeField()
    kind = models.CharField(max_length=20)
    outcome = models.CharField(max_length=20)
    registry = models.CharField(max_length=255, blank=True)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hour", "kind", "outcome", "registry"], name="audit_hourly_unique")
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H}h {self.kind} {self.outcome}: {self.count}"


class AuditExport(models.Model):
    """A large export running as a Celery job, with progress; the file lands under DATA_DIR."""

    requested_by = models.CharField(max_length=255)
    requested_by_id = models.BigIntegerField(null=True, blank=True)
    filters = models.JSONField(default=dict)
    format = models.CharField(max_length=8)
    status = models.CharField(max_length=12, default="queued")  # queued | running | done | failed
    rows = models.BigIntegerField(default=0)
    total = models.BigIntegerField(null=True, blank=True)
    path = models.CharField(max_length=500, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export #{self.pk} ({self.format}, {self.status})"


class UseAction(models.TextChoices):
    """What a usage row counts: a granted repository action, or an issued token at all."""

    PULL = "pull", "Pull"
    PUSH = "push", "Push"
    DELETE = "delete", "Delete"
    LOGIN = "login", "Login"


class AccessUse(models.Model):
    """When a subject last (and first) used one right, and how often: ``AccessUseDay`` summed over its days.

    Kept by the sealer from access records that issued a token (granted, partial, denied) to a
    user, robot or personal access token; refusals and anonymous requests count nothing. Each
    record counts once per granted ``pull``/``push``/``delete`` on a repository (``*`` and the
    catalog add nothing) and once as ``login`` (``repository`` empty: the subject authenticated,
    whatever it asked for).

    ``subject_type`` and ``actor``: ``user`` and the username, ``robot`` and its login name
    (``robot$team+name``). A personal access token acts with part of its user's rights, so its
    records count under ``user`` and the username (a user's rights show as used when only
    their tokens use them), and also as ``login`` under ``token`` and the token's label
    (``username/tokenname``), for the token's own last use; ``token`` rows are only ``login``.

    ``first_at``, ``last_at`` and ``count`` cover the retained access records only and are
    exact: retention recomputes a row from the days it keeps, and removes it with its last
    day, so ``last_at`` always names a record that still exists.
    """

    subject_type = models.CharField(max_length=20, choices=SubjectType.choices)
    actor = models.CharField(max_length=255)
    registry = models.CharField(max_length=255)
    repository = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=10, choices=UseAction.choices)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            # Leads with (actor, subject_type): it is also the index the report's lookups use.
            models.UniqueConstraint(
                fields=["actor", "subject_type", "registry", "repository", "action"], name="audit_access_use_unique"
            )
        ]
        indexes = [
            # A subject's uses under a grant's literal prefix, by range (``usage.indexes_under``); in byte
            # order on PostgreSQL whatever the collation, as its ~>=~ / ~<~ comparisons need.
            models.Index(
                fields=["actor", "subject_type", "repository"],
                name="audit_use_actor_repository",
                opclasses=["varchar_pattern_ops"] * 3,
            ),
        ]

    def __str__(self) -> str:
        where = f"{self.registry}/{self.repository}" if self.repository else self.registry
        return f"{self.subject_type} {self.actor} {self.action} {where}: last {self.last_at:%Y-%m-%d %H:%M}"


class AccessUseDay(models.Model):
    """``AccessUse`` per UTC day: how often in the last N days, and what retention drops with a day's records.

    ``first_at`` and ``last_at`` (the day's first and last use) let retention recompute
    ``AccessUse`` exactly from the days it keeps.
    """

    day = models.DateField()
    subject_type = models.CharField(max_length=20, choices=SubjectType.choices)
    actor = models.CharField(max_length=255)
    registry = models.CharField(max_length=255)
    repository = models.CharField(max_length=255, blank=True)
    action = models.CharField(max_length=10, choices=UseAction.choices)
    count = models.BigIntegerField(default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Leads with the day: retention deletes a whole day at once.
            models.UniqueConstraint(
                fields=["day", "subject_type", "actor", "registry", "repository", "action"],
                name="audit_access_use_day_unique",
            )
        ]
        indexes = [models.Index(fields=["actor", "day"], name="audit_use_day_actor_day")]

    def __str__(self) -> str:
        where = f"{self.registry}/{self.repository}" if self.repository else self.registry
        return f"{self.day} {self.subject_type} {self.actor} {self.action} {where}: {self.count}"
