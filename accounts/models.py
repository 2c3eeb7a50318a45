"""Identities, teams, registries, repositories and grants of repository roles."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.constants import ROBOT_LOGIN_PREFIX
from accounts.querysets import CredentialQuerySet, GrantQuerySet, RegistryQuerySet, RobotQuerySet
from accounts.validators import pattern_validator, repository_name_validator


class User(AbstractUser):
    """A person. Admin = superuser; an auditor reads everything and changes nothing."""

    is_auditor = models.BooleanField(default=False, help_text="May read every log, grant and page; may change nothing.")
    catalog_access = models.BooleanField(default=False, help_text="May list the registry catalog (registry:catalog:*).")
    # bcrypt ($2y$) of the password, kept beside Django's hash for registries in htpasswd
    # mode; empty when unknown (the user must set a password again for htpasswd mode).
    htpasswd_hash = models.CharField(max_length=100, blank=True, editable=False)
    # Directory (LDAP) users: the DN of their entry. Set = directory-managed: the password is the
    # directory's (Django's hash is unusable), email and names follow the directory.
    directory_dn = models.CharField(max_length=1024, blank=True, editable=False)
    # Which flags the directory gave (LDAP_ADMIN_GROUP / LDAP_AUDITOR_GROUP): the sync takes back only those.
    admin_from_directory = models.BooleanField(default=False, editable=False)
    auditor_from_directory = models.BooleanField(default=False, editable=False)
    # When the sync deactivated them because they vanished from the directory (it reactivates them if they return).
    directory_missing_since = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def from_directory(self) -> bool:
        return bool(self.directory_dn)


class AuthMode(models.TextChoices):
    TOKEN = "token", "Token server (roles enforced)"
    HTPASSWD = "htpasswd", "htpasswd file (authentication only)"


class Registry(models.Model):
    """A registry we authorize for, known by its ``service`` name (the token audience)."""

    service = models.CharField(max_length=255, unique=True)
    url = models.URLField(blank=True, help_text="Base URL, e.g. https://registry.example.org")
    auth_mode = models.CharField(max_length=10, choices=AuthMode.choices, default=AuthMode.TOKEN)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = RegistryQuerySet.as_manager()

    class Meta:
        ordering = ["service"]
        verbose_name_plural = "registries"

    def __str__(self) -> str:
        return self.service


class Team(models.Model):
    """A group of users; its maintainers (team leads) manage its grants and members."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class TeamRole(models.TextChoices):
    MAINTAINER = "maintainer", "Maintainer (team lead)"
    MEMBER = "member", "Member"


ROLE_RANK = {TeamRole.MEMBER: 1, TeamRole.MAINTAINER: 2}


class DirectoryGroup(models.Model):
    """A directory group whose members belong to a team with ``role`` (kept by the directory sync).

    ``dn`` is stored normalized (lower case, no spaces around separators), as the sync compares it.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="directory_groups")
    dn = models.CharField(max_length=1024)
    role = models.CharField(max_length=12, choices=TeamRole.choices, default=TeamRole.MEMBER)

    class Meta:
        ordering = ["team__name", "dn"]
        constraints = [models.UniqueConstraint(fields=["team", "dn"], name="directory_group_unique")]

    def __str__(self) -> str:
        return f"{self.dn} -> {self.team} ({self.role})"


class Membership(models.Model):
    """A user's role in a team: the highest of its sources.

    Sources: ``local_role`` (set in the dashboard, policy or admin; blank = none) and each directory
    group (``sources``) the user is in. Leaving a group removes only that source; the row goes when
    no source is left.
    """

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=TeamRole.choices, default=TeamRole.MEMBER)
    local_role = models.CharField(max_length=12, choices=TeamRole.choices, blank=True, default="")
    directory_groups = models.ManyToManyField(DirectoryGroup, blank=True, related_name="memberships")

    class Meta:
        ordering = ["team__name", "user__username"]
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} in {self.team} ({self.role})"

    def effective_role(self, directory_roles: list[str]) -> str | None:
        """The highest of the local role and ``directory_roles``; None when there is no source."""
        roles = [r for r in [self.local_role, *directory_roles] if r]
        return max(roles, key=lambda r: ROLE_RANK[r]) if roles else None


class Repository(models.Model):
    """A repository we know of. Rows appear from registry events; pushes need none beforehand.

    ``registry`` null means the row applies to every registry.
    """

    name = models.CharField(max_length=255, validators=[repository_name_validator])
    registry = models.ForeignKey(Registry, null=True, blank=True, on_delete=models.CASCADE)
    public = models.BooleanField(default=False, help_text="Anyone, even anonymous, may pull.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "repositories"
        constraints = [
            models.UniqueConstraint("name", Coalesce("registry", Value(0)), name="repository_unique_per_registry"),
        ]

    def __str__(self) -> str:
        return self.name if self.registry_id is None else f"{self.registry}/{self.name}"


class Role(models.TextChoices):
    READ = "read", "read (pull)"
    WRITE = "write", "write (pull, push)"
    ADMIN = "admin", "admin (pull, push, delete)"


class Grant(models.Model):
    """A role on a repository pattern, given to one user or one team.

    ``registry`` null = every registry. ``managed_by`` is the team whose leads may
    revoke it. Expired grants count for nothing and are purged by a task.
    """

    pattern = models.CharField(
        max_length=255,
        validators=[pattern_validator],
        help_text="A name, or a glob: * within one path component, ** for one or more components.",
    )
    role = models.CharField(max_length=8, choices=Role.choices)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    robot = models.ForeignKey("Robot", null=True, blank=True, on_delete=models.CASCADE, related_name="grants")
    registry = models.ForeignKey(Registry, null=True, blank=True, on_delete=models.CASCADE)
    expires_at = models.DateTimeField(null=True, blank=True)
    managed_by = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="managed_grants"
    )
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="grants_made")
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = GrantQuerySet.as_manager()

    class Meta:
        ordering = ["pattern", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(team__isnull=True) & Q(robot__isnull=True))
                | (Q(user__isnull=True) & Q(team__isnull=False) & Q(robot__isnull=True))
                | (Q(user__isnull=True) & Q(team__isnull=True) & Q(robot__isnull=False)),
                name="grant_exactly_one_subject",
            ),
            models.UniqueConstraint(
                "robot",
                "pattern",
                Coalesce("registry", Value(0)),
                condition=Q(robot__isnull=False),
                name="grant_unique_robot_pattern",
            ),
            models.UniqueConstraint(
                "user",
                "pattern",
                Coalesce("registry", Value(0)),
                condition=Q(user__isnull=False),
                name="grant_unique_user_pattern",
            ),
            models.UniqueConstraint(
                "team",
                "pattern",
                Coalesce("registry", Value(0)),
                condition=Q(team__isnull=False),
                name="grant_unique_team_pattern",
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], name="grant_expires"),
            # "Who can access X" finds the patterns selecting X by equality and by their text up to the
            # first "*" (LIKE 'web/a*%'): pattern_ops serves both in any collation. Deliberately not a
            # plain btree: one ordered by pattern drew the grant list's filtered pages into long scans.
            models.Index(fields=["pattern"], name="grant_pattern_ops", opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.role} on {self.pattern} to {self.subject_label}"

    @property
    def subject_label(self) -> str:
        if self.robot_id:
            return f"robot {self.robot.login_name}"
        return f"user {self.user}" if self.user_id else f"team {self.team}"


class KeyState(models.TextChoices):
    NEXT = "next", "Next (published, not yet signing)"
    CURRENT = "current", "Current (signing)"
    PREVIOUS = "previous", "Previous (published while its tokens live)"
    RETIRED = "retired", "Retired"


# The keys whose certificates the registry's rootcertbundle holds (current, next, and previous while its tokens live).
BUNDLE_STATES = (KeyState.CURRENT, KeyState.NEXT, KeyState.PREVIOUS)


class SigningKey(models.Model):
    """An ES256 token-signing key. The private half is encrypted (KEY_ENCRYPTION_KEY).

    The registry's certificate bundle holds current, next and previous, so a
    rotation needs no registry restart as long as the registry loaded ``next``.
    """

    kid = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=10, choices=KeyState.choices)
    private_key = models.BinaryField()
    certificate = models.TextField()
    not_after = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["state"],
                condition=Q(state__in=["next", "current", "previous"]),
                name="signing_key_one_per_state",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid[:14]}… ({self.state})"


class RefreshToken(models.Model):
    """A long-lived token ``docker login`` keeps instead of the password. Stored hashed.

    Revoked on password change, deactivation, or by an admin.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    client_id = models.CharField(max_length=100, blank=True)
    service = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=100, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"refresh token of {self.user_id} for {self.service}"


class NotificationEndpoint(models.Model):
    """The shared bearer secret a registry sends with its event notifications (encrypted)."""

    registry = models.OneToOneField(Registry, on_delete=models.CASCADE, related_name="notification_endpoint")
    secret = models.BinaryField()
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # After a rotation the old secret is still accepted until ``previous_valid_until`` (encrypted too).
    previous_secret = models.BinaryField(blank=True, default=b"")
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    # Which of the two the registry sent last, and when (written at most once a minute).
    last_used = models.CharField(max_length=10, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"notifications of {self.registry}"


class Credential(models.Model):
    """What robots and personal access tokens share: a secret shown once, stored as a keyed hash."""

    secret_hash = models.CharField(max_length=64, unique=True, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)
    expiry_recorded_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_by = models.ForeignKey(
        User, null=True, blank=True, editable=False, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True, editable=False)

    objects = CredentialQuerySet.as_manager()

    class Meta:
        abstract = True

    def refusal(self, now: object) -> str:
        """Why this credential cannot be used now ("" when it can)."""
        if self.revoked_at is not None:
            return f"revoked {self.revoked_at:%Y-%m-%d %H:%M} UTC"
        if self.expires_at is not None and self.expires_at <= now:
            return f"expired {self.expires_at:%Y-%m-%d %H:%M} UTC"
        return ""


class Robot(Credential):
    """A machine account (CI, deploy hosts) of a team, or global (made by an admin).

    It logs in as ``robot$<team>+<name>`` (global: ``robot$<name>``). Its grants
    count only within what its team holds, re-checked at every request.
    """

    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.CASCADE, related_name="robots")
    name = models.SlugField(max_length=100)
    description = models.CharField(max_length=255, blank=True)
    bcrypt_hash = models.CharField(max_length=100, blank=True, editable=False)
    # When the secret was last set (made or rotated): ROBOT_SECRET_MAX_AGE_DAYS counts from here.
    secret_set_at = models.DateTimeField(default=timezone.now, editable=False)
    # After a rotation the old secret keeps working until ``previous_valid_until`` (the grace period).
    previous_secret_hash = models.CharField(max_length=64, blank=True, editable=False)
    previous_valid_until = models.DateTimeField(null=True, blank=True, editable=False)

    objects = RobotQuerySet.as_manager()

    class Meta:
        ordering = ["team__name", "name"]
        constraints = [
            models.UniqueConstraint(Coalesce("team", Value(0)), "name", name="robot_unique_name_per_team"),
        ]
        indexes = [
            models.Index(
                fields=["previous_secret_hash"], condition=~Q(previous_secret_hash=""), name="robot_previous_secret"
            ),
        ]

    def __str__(self) -> str:
        return self.login_name

    @property
    def login_name(self) -> str:
        prefix = f"{ROBOT_LOGIN_PREFIX}{self.team.name}+" if self.team_id else ROBOT_LOGIN_PREFIX
        return f"{prefix}{self.name}"


class PersonalAccessToken(Credential):
    """A named token a user can use as the password in ``docker login``, limited to part of their rights.

    ``read_only`` caps it at pull; ``patterns`` (if any) caps it to those repositories.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="access_tokens")
    name = models.CharField(max_length=100)
    read_only = models.BooleanField(default=False)
    patterns = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["user__username", "name"]
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="token_unique_name_per_user")]

    def __str__(self) -> str:
        return f"{self.user.username}/{self.name}"


class HoldScope(models.TextChoices):
    USER = "user", "Username from one address"
    ADDRESS = "address", "Whole address"


class AuthHold(models.Model):
    """Someone held back from signing in after too many failures, listed so that an admin can lift it.

    The counts behind a hold live in the shared cache (``accounts/services/limits.py``), where the
    token endpoint reads them; this row is what people see and lift. ``key`` names the pair
    (case-folded username and address) or the address; ``level`` counts holds in a row (each
    doubles the last, up to AUTH_FAIL_MAX_BACKOFF).
    """

    key = models.CharField(max_length=80, unique=True)
    scope = models.CharField(max_length=10, choices=HoldScope.choices)
    username = models.CharField(max_length=150, blank=True)
    ip = models.GenericIPAddressField()
    failures = models.PositiveIntegerField(default=0)
    level = models.PositiveIntegerField(default=1)
    held_until = models.DateTimeField()
    first_held_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-held_until"]
        indexes = [models.Index(fields=["held_until"], name="auth_hold_until")]

    def __str__(self) -> str:
        who = f"{self.username or '(refresh token)'} from {self.ip}" if self.scope == HoldScope.USER else self.ip
        return f"hold on {who} until {self.held_until:%Y-%m-%d %H:%M:%S} UTC"


class AuthzState(models.Model):
    """Version tags of what token decisions read, changed in the same transaction as the rows.

    ``authz`` changes whenever a row a decision reads changes (database triggers on those tables,
    installed by ``accounts.access.version`` after every migrate, so raw SQL and the admin count
    too); ``limits`` whenever a failed sign-in is counted. Each token worker caches decisions
    tagged with both, and its access-record INSERT only writes while they still hold. Values are
    random (SQLite) or from a sequence (PostgreSQL), never ``+ 1``: a rolled-back change must
    not hand its number to the next one.
    """

    name = models.CharField(max_length=10, primary_key=True)
    version = models.BigIntegerField()

    def __str__(self) -> str:
        return f"{self.name} at {self.version}"


class ProposalKind(models.TextChoices):
    READ = "read", "Lower to read"
    REVOKE = "revoke", "Revoke"
    DEACTIVATE = "deactivate", "Deactivate"


class DismissedProposal(models.Model):
    """An unused-rights proposal someone dismissed, with why: not proposed again until ``until``.

    ``key`` names the proposal (subject type, subject, registry, pattern and what was proposed), so a
    different proposal for the same grant (revoke after read was dismissed) is still made.
    """

    key = models.CharField(max_length=700, unique=True)
    subject_type = models.CharField(max_length=10)
    subject = models.CharField(max_length=255)
    pattern = models.CharField(max_length=255, blank=True)
    proposal = models.CharField(max_length=12, choices=ProposalKind.choices)
    reason = models.CharField(max_length=500)
    dismissed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    dismissed_by_name = models.CharField(max_length=150)
    dismissed_at = models.DateTimeField(default=timezone.now)
    until = models.DateTimeField()

    class Meta:
        ordering = ["-dismissed_at"]
        indexes = [models.Index(fields=["until"], name="dismissed_proposal_until")]

    def __str__(self) -> str:
        return f"{self.proposal} {self.subject} {self.pattern} dismissed until {self.until:%Y-%m-%d}"


class ReviewCampaign(models.Model):
    """An access review: every grant, membership and robot goes to someone to certify or revoke by ``deadline``.

    A team's items go to its leads; what no team manages goes to admins, and so does every item
    left unanswered at the deadline (``escalated_at`` on the campaign and on each item).
    """

    name = models.CharField(max_length=100)
    started_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    started_by_name = models.CharField(max_length=150)
    scheduled = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    deadline = models.DateTimeField()
    reminded_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return self.name


class ReviewItemKind(models.TextChoices):
    GRANT = "grant", "Grant"
    MEMBERSHIP = "membership", "Team membership"
    ROBOT = "robot", "Robot"


class ReviewDecision(models.TextChoices):
    PENDING = "", "Waiting"
    CERTIFIED = "certified", "Certified"
    REVOKED = "revoked", "Revoked"
    GONE = "gone", "Gone before it was answered"


class ReviewItem(models.Model):
    """One thing a campaign asks about, frozen as it stood when the campaign started.

    ``team`` is the team whose leads answer (null: admins). The links to the grant, membership
    or robot are nulled when it goes; ``subject``, ``pattern``, ``role`` and ``last_used`` keep
    what the reviewer was shown, for the evidence export.
    """

    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.CASCADE, related_name="items")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    team_name = models.CharField(max_length=100, blank=True)
    kind = models.CharField(max_length=12, choices=ReviewItemKind.choices)
    grant = models.ForeignKey(Grant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    membership = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    robot = models.ForeignKey(Robot, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    subject = models.CharField(max_length=255)
    pattern = models.CharField(max_length=255, blank=True)
    registry = models.CharField(max_length=255, blank=True)
    role = models.CharField(max_length=12, blank=True)
    last_used = models.DateTimeField(null=True, blank=True)
    decision = models.CharField(max_length=10, choices=ReviewDecision.choices, blank=True, default="")
    decided_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_by_name = models.CharField(max_length=150, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["team_name", "kind", "subject", "pattern", "id"]
        indexes = [
            models.Index(fields=["campaign", "team", "decision"], name="review_item_queue"),
            # The admins' queue on every admin home page: waiting items of no team, or escalated. Without
            # it PostgreSQL reads the whole table (15-20 ms at 60k items); with it, only that queue.
            models.Index(
                fields=["campaign"],
                condition=models.Q(decision="") & (models.Q(team__isnull=True) | models.Q(escalated_at__isnull=False)),
                name="review_item_admin_queue",
            ),
        ]

    def __str__(self) -> str:
        what = f"{self.role} on {self.pattern}" if self.kind == ReviewItemKind.GRANT else self.kind
        return f"{what} of {self.subject} ({self.decision or 'waiting'})"


class ExpiryReminder(models.Model):
    """A reminder mail sent for one expiry of a grant, robot or token: sent once per expiry time.

    Extending the expiry makes a new one due for the new time. No foreign keys: the row outlives
    what it reminded of, and token decisions never read it.
    """

    kind = models.CharField(max_length=20)  # grant | robot | token | robot_secret (then: when the secret was set)
    object_id = models.BigIntegerField()
    expires_at = models.DateTimeField()
    sent_at = models.DateTimeField(default=timezone.now)
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "object_id", "expires_at"], name="expiry_reminder_once"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_id} expiring {self.expires_at:%Y-%m-%d}"


class CredentialPepper(models.Model):
    """A credential pepper brought by a restored backup from a host with another ``SECRET_KEY``.

    Robot, PAT and refresh-token hashes are keyed with a pepper derived from ``SECRET_KEY``; a restore
    keeps the old host's peppers here (wrapped under this host's KEY_ENCRYPTION_KEY) and lookups try
    them after this host's own, so secrets made there keep working here.
    """

    pepper = models.BinaryField()
    fingerprint = models.CharField(max_length=16, unique=True)  # first 16 hex of SHA-256: tells peppers apart
    source = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"pepper {self.fingerprint} from {self.source}"


class BackupState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    VERIFIED = "verified", "Verified"
    FAILED = "failed", "Failed"


class Backup(models.Model):
    """One backup run on this host and the file it wrote (under BACKUP_DIR, or elsewhere with --output-dir).

    The page lists these; ``stage`` and ``progress`` move while it runs. ``deleted_at`` is set when
    retention removed the file. Never part of a backup itself: it describes this host's files.
    """

    state = models.CharField(max_length=10, choices=BackupState.choices, default=BackupState.QUEUED)
    stage = models.CharField(max_length=100, blank=True)
    progress = models.PositiveSmallIntegerField(default=0)
    requested_by_name = models.CharField(max_length=150, blank=True)
    scheduled = models.BooleanField(default=False)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=1024, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    encrypted = models.BooleanField(default=True)
    counts = models.JSONField(default=dict, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    copied_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"backup {self.pk} ({self.state}) {self.path or ''}".rstrip()

    @property
    def file_name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


class DoctorStatus(models.TextChoices):
    """A doctor run's worst check: fail over warn over ok (skipped checks count as ok)."""

    OK = "ok", "ok"
    WARN = "warn", "warn"
    FAIL = "fail", "fail"


class DoctorRun(models.Model):
    """One run of the registry doctor on a registry: every check's status, summary, evidence and fix.

    ``results`` is the report as ``manage.py doctor --format json`` prints it (``Report.as_dict()``);
    ``worst`` sums it up for lists and the home page's alert. ``url`` is where the doctor probed
    (a proxy's address when one was given), ``origin`` the browser origin it tried CORS with.
    Scheduled runs are the daily job's; the others name who asked. Never part of a backup: it is
    this host's view of the registries at the time.
    """

    registry = models.ForeignKey(Registry, on_delete=models.CASCADE, related_name="doctor_runs")
    started_at = models.DateTimeField(default=timezone.now)
    seconds = models.FloatField(default=0.0)
    url = models.CharField(max_length=2048)
    origin = models.CharField(max_length=2048, blank=True)
    worst = models.CharField(max_length=4, choices=DoctorStatus.choices)
    results = models.JSONField(default=dict)
    requested_by_name = models.CharField(max_length=150, blank=True)
    scheduled = models.BooleanField(default=False)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["registry", "-started_at", "-id"], name="doctor_run_latest")]

    def __str__(self) -> str:
        return f"doctor run {self.pk} on {self.registry_id}: {self.worst}"

    @property
    def checks(self) -> list[dict]:
        return list(self.results.get("checks", []))

    @property
    def failed_ids(self) -> list[str]:
        return [check["id"] for check in self.checks if check.get("status") == DoctorStatus.FAIL]
