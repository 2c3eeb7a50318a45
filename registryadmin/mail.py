"""Outgoing mail for every feature that sends it: access reviews, expiry reminders, rotation alerts.

A mail is a notice beside a change that has already happened, so a mail server that is down or
refuses an address is logged and counted, never raised: it must not fail the job or the page that
sent it. Each recipient gets a message of their own, so nobody learns who else was told. The
transport is Django's (``EMAIL_*`` settings, see README: Mail); nothing here reads a secret.
"""

from __future__ import annotations

import contextlib
import logging
import smtplib
from collections.abc import Iterable

from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend

SUBJECT_PREFIX = "[registryadmin] "

logger = logging.getLogger(__name__)


def send(recipients: Iterable[str], subject: str, body: str) -> int:
    """Mail ``body`` to each address on its own; return how many messages the transport accepted.

    Empty addresses are dropped and repeats (in any letter case) sent once; the subject is put on
    one line and prefixed with ``SUBJECT_PREFIX``. The sender is ``DEFAULT_FROM_EMAIL``.
    """
    addresses = _unique(recipients)
    if not addresses:
        return 0
    subject = SUBJECT_PREFIX + " ".join(subject.split())  # a line break in a header is refused
    connection = get_connection()
    sent = 0
    try:
        connection.open()  # once for all: a server that is down is one warning, not one per address
        for address in addresses:
            sent += _send_one(connection, address, subject, body)
    except OSError as exc:  # SMTPException is an OSError, and so are ssl and socket errors
        logger.warning("mail transport failed, %d of %d mail(s) sent: %s", sent, len(addresses), _reason(exc))
    finally:
        with contextlib.suppress(OSError):  # what was sent is sent; a QUIT the server drops changes nothing
            connection.close()
    return sent


def _send_one(connection: BaseEmailBackend, address: str, subject: str, body: str) -> int:
    """1 if the transport took the message; a refusal of this one message is logged and is 0.

    The server stays usable after these (smtplib resets the transaction), so the next address is tried.
    """
    message = EmailMessage(subject, body, to=[address], connection=connection)
    try:
        return message.send()
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError, ValueError) as exc:
        # ValueError: an address that cannot be put in a header or encoded for this server.
        logger.warning("mail not sent to %s: %s", address, _reason(exc))
        return 0


def _unique(recipients: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for raw in recipients:
        address = (raw or "").strip()
        if address:
            seen.setdefault(address.lower(), address)
    return list(seen.values())


def _reason(exc: Exception) -> str:
    """What failed, without the server's reply text (it may echo what we sent, credentials included)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return f"{type(exc).__name__} " + ", ".join(str(code) for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{type(exc).__name__} {exc.smtp_code}"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__
