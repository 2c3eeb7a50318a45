"""Outgoing mail: the EMAIL_* settings (named once for every feature that mails) and registryadmin.mail.send.

The parsers are called directly; start-up is checked in a fresh process as test_settings does; sending
goes through a real SMTP server (aiosmtpd) on a loopback port, since what matters is what arrives.
"""

from __future__ import annotations

import email
import email.message
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from django.core.exceptions import ImproperlyConfigured
from pytest_django import Settings

from registryadmin import mail
from registryadmin.env import (
    CONSOLE_BACKEND,
    EMAIL_HOST_NAMES,
    FILE_BACKEND,
    SMTP_BACKEND,
    email_config,
    envemail,
    envmailbox,
)
from tests.conftest import REPO_ROOT
from tests.harness.ports import free_port

PASSWORD = "hunter2-never-shown"  # the SMTP password in every test: it must appear in no message


@pytest.fixture
def no_mail_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*EMAIL_HOST_NAMES, "EMAIL_URL", "EMAIL_URL_FILE"):
        monkeypatch.delenv(name, raising=False)


# EMAIL_URL


def test_an_smtp_url_sets_host_port_user_and_password_percent_decoded() -> None:
    config = email_config(f"smtp://ops%40example.org:{PASSWORD}%2F%3A@mail.example.org:2525")
    assert config["EMAIL_BACKEND"] == SMTP_BACKEND
    assert (config["EMAIL_HOST"], config["EMAIL_PORT"]) == ("mail.example.org", 2525)
    assert (config["EMAIL_HOST_USER"], config["EMAIL_HOST_PASSWORD"]) == ("ops@example.org", PASSWORD + "/:")
    assert config["EMAIL_USE_TLS"] is False and config["EMAIL_USE_SSL"] is False
    assert config["EMAIL_TIMEOUT"] == 10


def test_an_smtp_url_without_a_port_or_login_uses_port_25_and_no_login() -> None:
    config = email_config("smtp://mail.example.org")
    assert (config["EMAIL_PORT"], config["EMAIL_HOST_USER"], config["EMAIL_HOST_PASSWORD"]) == (25, "", "")


@pytest.mark.parametrize("url", ["smtp+tls://mail.example.org", "smtp://mail.example.org:587?tls=true"])
def test_smtp_tls_or_the_tls_parameter_turns_on_starttls_on_587(url: str) -> None:
    config = email_config(url)
    assert (config["EMAIL_PORT"], config["EMAIL_USE_TLS"], config["EMAIL_USE_SSL"]) == (587, True, False)


def test_smtps_turns_on_tls_from_the_first_byte_on_465() -> None:
    config = email_config("smtps://u:p@mail.example.org")
    assert (config["EMAIL_PORT"], config["EMAIL_USE_TLS"], config["EMAIL_USE_SSL"]) == (465, False, True)


def test_a_timeout_parameter_sets_the_smtp_timeout() -> None:
    assert email_config("smtp+tls://mail.example.org?timeout=3")["EMAIL_TIMEOUT"] == 3


def test_console_and_file_urls_pick_djangos_console_and_file_backends() -> None:
    assert email_config("console://")["EMAIL_BACKEND"] == CONSOLE_BACKEND
    config = email_config("file:///var/spool/registryadmin%20mail")
    assert config["EMAIL_BACKEND"] == FILE_BACKEND
    assert config["EMAIL_FILE_PATH"] == "/var/spool/registryadmin mail"


@pytest.mark.parametrize(
    "url",
    [
        f"smtpx://ops:{PASSWORD}@mail.example.org",  # unknown scheme
        f"mail.example.org:{PASSWORD}@587",  # no scheme at all
        f"smtp://ops:{PASSWORD}@mail.example.org:smtp",  # port not a number
        f"smtp://ops:{PASSWORD}@mail.example.org:70000",  # port out of range
        f"smtp://ops:{PASSWORD}@mail.example.org:0",
        f"smtp://ops:{PASSWORD}@",  # no host
        f"smtps://ops:{PASSWORD}@mail.example.org?tls=true",  # STARTTLS and TLS
        f"smtp://ops:{PASSWORD}@mail.example.org?tls=true&ssl=true",
        f"smtp://ops:{PASSWORD}@mail.example.org?tls=maybe",
        f"smtp://ops:{PASSWORD}@mail.example.org?timeout=0",
        f"smtp://ops:{PASSWORD}@mail.example.org?starttls=1",  # unknown parameter
        f"smtp://ops:{PASSWORD}@mail.example.org/inbox",
        f"smtp://ops:{PASSWORD}/with-a-slash@mail.example.org",  # a password not percent-encoded
        f"smtp://ops:{PASSWORD}#hash@mail.example.org",
        f"smtp://ops:?{PASSWORD}@mail.example.org",  # the rest of the password reads as a parameter
        f"smtp://ops:{PASSWORD}",  # no host: the password reads as the port
        f"smtp://[ops:{PASSWORD}@mail.example.org",
        "file://relative/dir",
        "file:///",
        "console://somewhere",
    ],
)
def test_a_malformed_email_url_is_refused_naming_it_without_the_password(url: str) -> None:
    with pytest.raises(ImproperlyConfigured) as refused:
        email_config(url)
    assert str(refused.value).startswith("EMAIL_URL (")
    assert PASSWORD not in str(refused.value)


# The separate names, and what stands beside what


@pytest.mark.usefixtures("no_mail_environment")
def test_with_no_mail_settings_mails_go_to_the_console() -> None:
    assert envemail()["EMAIL_BACKEND"] == CONSOLE_BACKEND


@pytest.mark.usefixtures("no_mail_environment")
def test_email_host_and_its_companions_set_an_smtp_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMAIL_HOST", "mail.example.org")
    monkeypatch.setenv("EMAIL_HOST_USER", "ops")
    monkeypatch.setenv("EMAIL_HOST_PASSWORD", PASSWORD)
    monkeypatch.setenv("EMAIL_USE_TLS", "true")
    config = envemail()
    assert config["EMAIL_BACKEND"] == SMTP_BACKEND
    assert (config["EMAIL_HOST"], config["EMAIL_PORT"], config["EMAIL_TIMEOUT"]) == ("mail.example.org", 25, 10)
    assert (config["EMAIL_HOST_USER"], config["EMAIL_HOST_PASSWORD"]) == ("ops", PASSWORD)
    assert config["EMAIL_USE_TLS"] is True and config["EMAIL_USE_SSL"] is False


@pytest.mark.usefixtures("no_mail_environment")
def test_the_email_url_and_the_smtp_password_are_read_from_their_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "url").write_text(f"smtps://ops:{PASSWORD}@mail.example.org\n")
    monkeypatch.setenv("EMAIL_URL_FILE", str(tmp_path / "url"))
    assert envemail()["EMAIL_HOST_PASSWORD"] == PASSWORD
    monkeypatch.delenv("EMAIL_URL_FILE")
    (tmp_path / "password").write_text(PASSWORD + "\n")
    monkeypatch.setenv("EMAIL_HOST", "mail.example.org")
    monkeypatch.setenv("EMAIL_HOST_PASSWORD_FILE", str(tmp_path / "password"))
    assert envemail()["EMAIL_HOST_PASSWORD"] == PASSWORD


@pytest.mark.usefixtures("no_mail_environment")
@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EMAIL_URL": f"smtp://ops:{PASSWORD}@a.example.org", "EMAIL_HOST": "b.example.org"}, "EMAIL_URL"),
        ({"EMAIL_URL": f"smtp://ops:{PASSWORD}@a.example.org", "EMAIL_HOST": "b.example.org"}, "EMAIL_HOST"),
        ({"EMAIL_HOST": "mail.example.org", "EMAIL_USE_TLS": "true", "EMAIL_USE_SSL": "true"}, "EMAIL_USE_SSL"),
        ({"EMAIL_HOST": "mail.example.org", "EMAIL_PORT": "smtp"}, "EMAIL_PORT"),
        ({"EMAIL_HOST": "mail.example.org", "EMAIL_PORT": "70000"}, "EMAIL_PORT"),
        ({"EMAIL_HOST": "mail.example.org", "EMAIL_TIMEOUT": "0"}, "EMAIL_TIMEOUT"),
        ({"EMAIL_HOST": f"smtp://ops:{PASSWORD}@mail.example.org"}, "EMAIL_HOST"),  # a URL in the wrong place
        ({"EMAIL_HOST_PASSWORD": PASSWORD}, "EMAIL_HOST"),  # a password for no server
        ({"EMAIL_HOST": "mail.example.org", "EMAIL_HOST_PASSWORD_FILE": "/nonexistent"}, "EMAIL_HOST_PASSWORD_FILE"),
    ],
)
def test_conflicting_or_malformed_mail_settings_are_refused_by_name_without_the_password(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured) as refused:
        envemail()
    assert named in str(refused.value)
    assert PASSWORD not in str(refused.value)


@pytest.mark.parametrize("address", ["ops@example.org", "Registry Admin <ops@example.org>", "ops@[192.0.2.1]"])
def test_a_from_address_may_carry_a_display_name(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("DEFAULT_FROM_EMAIL", address)
    assert envmailbox("DEFAULT_FROM_EMAIL", "x@example.org") == address


@pytest.mark.parametrize("address", ["ops", "ops@", "a@example.org, b@example.org", "Ops <ops@example.org>\nBcc: x@y"])
def test_a_from_value_that_is_not_one_address_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    monkeypatch.setenv("SERVER_EMAIL", address)
    with pytest.raises(ImproperlyConfigured, match="SERVER_EMAIL="):
        envmailbox("SERVER_EMAIL", "x@example.org")


# Start-up, in a fresh process

PROBE = (
    "import json, django; from django.conf import settings; django.setup(); "
    "print(json.dumps({name: getattr(settings, name) for name in ("
    "'EMAIL_BACKEND', 'EMAIL_HOST', 'EMAIL_PORT', 'EMAIL_USE_TLS', 'EMAIL_USE_SSL', 'EMAIL_TIMEOUT', "
    "'EMAIL_CONFIGURED', 'DEFAULT_FROM_EMAIL', 'SERVER_EMAIL')}))"
)


def start(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DATABASE_URL", "TEST_DATABASE_URL", "PUBLIC_URL"} and not k.startswith("EMAIL_")
    }
    clean.update(DJANGO_SETTINGS_MODULE="registryadmin.settings", DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_it_starts_with_the_console_backend_and_says_mail_is_not_configured(tmp_path: Path) -> None:
    result = start(tmp_path)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["EMAIL_BACKEND"] == CONSOLE_BACKEND and loaded["EMAIL_CONFIGURED"] is False
    assert loaded["DEFAULT_FROM_EMAIL"] == loaded["SERVER_EMAIL"] == "registryadmin@[127.0.0.1]"


def test_an_smtp_url_configures_mail_and_the_sender_follows_public_url(tmp_path: Path) -> None:
    result = start(
        tmp_path, EMAIL_URL=f"smtp+tls://ops:{PASSWORD}@mail.example.org", PUBLIC_URL="https://registry.example.org"
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert loaded["EMAIL_BACKEND"] == SMTP_BACKEND and loaded["EMAIL_CONFIGURED"] is True
    assert (loaded["EMAIL_HOST"], loaded["EMAIL_PORT"], loaded["EMAIL_USE_TLS"]) == ("mail.example.org", 587, True)
    assert loaded["DEFAULT_FROM_EMAIL"] == "registryadmin@registry.example.org"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EMAIL_URL": f"imap://ops:{PASSWORD}@mail.example.org"}, "EMAIL_URL"),
        ({"EMAIL_URL": f"smtp://ops:{PASSWORD}@mail.example.org:port"}, "EMAIL_URL"),
        ({"EMAIL_URL": f"smtp://ops:{PASSWORD}@a.example.org", "EMAIL_HOST": "b.example.org"}, "EMAIL_HOST"),
        ({"EMAIL_HOST": "b.example.org", "EMAIL_USE_TLS": "1", "EMAIL_USE_SSL": "1"}, "EMAIL_USE_TLS"),
        ({"DEFAULT_FROM_EMAIL": "registry admin"}, "DEFAULT_FROM_EMAIL"),
    ],
)
def test_a_bad_mail_setting_stops_start_up_naming_the_variable_and_never_the_password(
    tmp_path: Path, env: dict[str, str], named: str
) -> None:
    result = start(tmp_path, **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr.strip().splitlines()[-1]
    assert PASSWORD not in result.stderr + result.stdout


# Sending, through a real SMTP server


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps what it was sent and refuses the addresses in ``unknown``."""

    unknown: set[str] = field(default_factory=set)
    received: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.unknown:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append(envelope)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.Message]:
        return [email.message_from_bytes(envelope.original_content or b"") for envelope in self.received]


def refuse_every_login(server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: object) -> AuthResult:
    return AuthResult(success=False, handled=False)


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox(unknown={"nobody@example.org"})


def smtp_server(handler: Mailbox, **options: object) -> Controller:
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), server_hostname="localhost", **options)
    controller.start()
    return controller


@pytest.fixture
def smtp(mailbox: Mailbox, settings: Settings) -> Iterator[Controller]:
    """A real SMTP server on a loopback port, and the settings that send to it."""
    controller = smtp_server(mailbox)
    use_smtp(settings, controller.port)
    yield controller
    controller.stop()


def use_smtp(settings: Settings, port: int, user: str = "", password: str = "") -> None:
    settings.EMAIL_BACKEND = SMTP_BACKEND
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 5
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = user, password
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.DEFAULT_FROM_EMAIL = "Registry Admin <registryadmin@registry.example.org>"


@pytest.mark.usefixtures("smtp")
def test_a_mail_arrives_with_the_sender_the_recipient_and_the_prefixed_subject(mailbox: Mailbox) -> None:
    assert mail.send(["alice@example.org"], "Access review due", "Please review team web.") == 1
    [message] = mailbox.messages()
    assert message["From"] == "Registry Admin <registryadmin@registry.example.org>"
    assert message["To"] == "alice@example.org"
    assert message["Subject"] == "[registryadmin] Access review due"
    assert message.get_payload(decode=True).decode().strip() == "Please review team web."  # type: ignore[union-attr]
    assert mailbox.received[0].mail_from == "registryadmin@registry.example.org"


@pytest.mark.usefixtures("smtp")
def test_each_recipient_gets_a_message_of_their_own_once_and_empty_addresses_are_dropped(mailbox: Mailbox) -> None:
    sent = mail.send(["alice@example.org", "", "  ", "bob@example.org", "Alice@Example.org"], "Key rotated", "-")
    assert sent == 2
    assert [envelope.rcpt_tos for envelope in mailbox.received] == [["alice@example.org"], ["bob@example.org"]]
    assert [message["To"] for message in mailbox.messages()] == ["alice@example.org", "bob@example.org"]
    assert all("Cc" not in message and "Bcc" not in message for message in mailbox.messages())


@pytest.mark.usefixtures("smtp")
def test_a_refused_address_is_skipped_and_logged_and_the_others_still_get_theirs(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="registryadmin.mail"):
        assert mail.send(["alice@example.org", "nobody@example.org", "bob@example.org"], "Expiry", "-") == 2
    assert [envelope.rcpt_tos for envelope in mailbox.received] == [["alice@example.org"], ["bob@example.org"]]
    assert "nobody@example.org" in caplog.text and "550" in caplog.text


@pytest.mark.usefixtures("smtp")
def test_a_subject_is_put_on_one_line() -> None:
    assert mail.send(["alice@example.org"], "Access review\nBcc: mallory@example.org", "-") == 1


def test_a_refused_connection_sends_nothing_raises_nothing_and_logs_no_secret(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    use_smtp(settings, free_port(), user="ops", password=PASSWORD)  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="registryadmin.mail"):
        assert mail.send(["alice@example.org", "bob@example.org"], "Expiry", "-") == 0
    assert "0 of 2" in caplog.text and "ConnectionRefusedError" in caplog.text
    assert PASSWORD not in caplog.text


def test_a_refused_login_sends_nothing_and_logs_no_secret(
    mailbox: Mailbox, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    controller = smtp_server(mailbox, authenticator=refuse_every_login, auth_require_tls=False)
    try:
        use_smtp(settings, controller.port, user="ops", password=PASSWORD)
        with caplog.at_level(logging.WARNING, logger="registryadmin.mail"):
            assert mail.send(["alice@example.org"], "Expiry", "-") == 0
    finally:
        controller.stop()
    assert "SMTPAuthenticationError 535" in caplog.text
    assert PASSWORD not in caplog.text and not mailbox.received


def test_nobody_to_mail_sends_nothing() -> None:
    assert mail.send(["", " "], "Expiry", "-") == 0


def test_without_a_mail_server_the_console_backend_prints_the_mail(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.EMAIL_BACKEND = CONSOLE_BACKEND
    assert mail.send(["alice@example.org"], "Access review due", "Please review team web.") == 1
    printed = capsys.readouterr().out
    assert "Subject: [registryadmin] Access review due" in printed and "To: alice@example.org" in printed
