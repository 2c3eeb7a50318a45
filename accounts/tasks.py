"""Scheduled work on accounts; each task delegates to a service."""

from __future__ import annotations

from celery import shared_task

from accounts import services
from accounts.registry import config, htpasswd
from accounts.registry.doctor import daily
from audit.context import AuditContext
from audit.jobs import run_job


@shared_task(name="accounts.tasks.purge_expired_grants", autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def purge_expired_grants() -> int:
    """Remove expired grants; each removal and the run itself land in the audit log."""
    result = run_job(
        "purge_expired_grants",
        lambda: {
            "purged": services.purge_expired_grants(),
            "credentials_expired": services.record_credential_expiries(),
        },
    )
    return result["purged"]


@shared_task(name="accounts.tasks.sync_htpasswd", autoretry_for=(OSError,), retry_backoff=True, max_retries=3)
def sync_htpasswd() -> int:
    """Safety net: rewrite htpasswd files (also drops robots whose expiry has passed)."""
    return run_job("sync_htpasswd", lambda: {"files": htpasswd.sync_all()})["files"]


@shared_task(name="accounts.tasks.sync_ldap")
def sync_ldap() -> dict:
    """Directory groups to team memberships for everyone, vanished people deactivated (LDAP_SERVER_URI set)."""
    if not services.directory.enabled():
        return run_job("sync_ldap", lambda: {"skipped": "LDAP_SERVER_URI is not set"})
    return run_job("sync_ldap", lambda: services.directory_sync.sync_all().summary())


@shared_task(name="accounts.tasks.start_access_review")
def start_access_review() -> dict:
    """The scheduled access review (SCHEDULE_ACCESS_REVIEW): freeze every right, mail the leads."""
    return run_job("start_access_review", services.reviews.start_scheduled)


@shared_task(name="accounts.tasks.check_access_reviews")
def check_access_reviews() -> dict:
    """Hourly: remind the leads before a review's deadline, escalate what is left at it to the admins."""
    return run_job("check_access_reviews", services.reviews.check)


@shared_task(name="accounts.tasks.send_expiry_reminders")
def send_expiry_reminders() -> dict:
    """Daily: mail who holds or leads what expires within EXPIRY_REMINDER_DAYS, once per expiry."""
    return run_job("send_expiry_reminders", services.reminders.send_due)


class RotationRefused(Exception):
    """A due signing-key rotation was refused: the job is recorded as failed, with the remedy."""


@shared_task(name="accounts.tasks.rotate_signing_key")
def rotate_signing_key() -> dict:
    """Daily: retire a previous key whose tokens expired; rotate a key past SIGNING_KEY_MAX_AGE_DAYS (preflight)."""

    def work() -> dict:
        outcome = config.rotate_if_due(AuditContext.system("scheduled key rotation"))
        if outcome.refusal:
            raise RotationRefused(outcome.refusal)
        return outcome.summary()

    return run_job("rotate_signing_key", work)


@shared_task(name="accounts.tasks.robot_secret_age")
def robot_secret_age() -> dict:
    """Daily: tell leads (once per secret) about robots whose secret is older than ROBOT_SECRET_MAX_AGE_DAYS."""
    return run_job("robot_secret_age", services.reminders.send_stale_robot_secrets)


@shared_task(name="accounts.tasks.backup")
def backup(run_id: int | None = None) -> dict:
    """Daily (SCHEDULE_BACKUP) or "back up now": a verified, encrypted backup, then retention and the copy hook.

    A backup that does not verify, or cannot be copied off the host, fails the job: admins are mailed.
    """
    run = services.backups.claim_run(run_id)
    context = AuditContext.system("job:backup")

    def work() -> dict:
        done = services.backups.take(context, fragments=config.backup_fragments(), run=run)
        return {"file": done.file_name, "size": done.size, "rows": sum(done.counts.values())}

    return run_job("backup", work)


@shared_task(name="accounts.tasks.doctor_registries")
def doctor_registries() -> dict:
    """Daily (SCHEDULE_DOCTOR): the doctor on every registry with a URL; admins mailed when a check turns to fail."""
    return run_job("doctor_registries", lambda: daily.run_all(AuditContext.system("job:doctor_registries")))
