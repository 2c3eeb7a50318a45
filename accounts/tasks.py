"""Scheduled work on accounts; each task delegates to a service."""

from __future__ import annotations

from celery import shared_task

from accounts import services
from accounts.registry import htpasswd
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
