"""Typed readers for settings taken from the environment.

Every reader fails with ``ImproperlyConfigured`` naming the variable, so a
malformed value stops start-up with a message an operator can act on.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import secrets
from email.utils import getaddresses
from pathlib import Path
from typing import TypedDict
from urllib.parse import parse_qsl, unquote, urlsplit

import dj_database_url
import ldap
import ldap.dn
import pyrage
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.validators import validate_email

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return None if value is None else value.strip()


def envstr(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None or value == "" else value


def envbool(name: str, default: bool) -> bool:
    value = _raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean; use true or false.")


def envint(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ImproperlyConfigured(f"{name}={number} is out of range [{minimum}, {maximum}].")
    return number


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = envstr(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of: {', '.join(choices)}.")
    return value


def envnetworks(name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for item in envlist(name):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP address or CIDR.") from None
    return networks


def envsecret(name: str) -> str | None:
    """Read NAME, or the file named by NAME_FILE (Docker/Kubernetes secrets)."""
    value = _raw(name)
    path = _raw(f"{name}_FILE")
    if value and path:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    if value:
        return value
    if path:
        try:
            content = Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}.") from None
        if not content:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} is empty.")
        return content
    return None


def envpassphrase(name: str) -> str:
    """A passphrase from NAME or NAME_FILE, exactly as given: any non-empty string, spaces included.

    Only the file's final line break is dropped (editors add one). "" when neither is set.
    """
    value = os.environ.get(name)
    path = os.environ.get(f"{name}_FILE")
    if value and path:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    if value:
        return value
    if not path:
        return ""
    try:
        content = Path(path).read_text()
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}.") from None
    content = content[:-1] if content.endswith("\n") else content
    content = content[:-1] if content.endswith("\r") else content
    if not content:
        raise ImproperlyConfigured(f"{name}_FILE={path!r} is empty.")
    return content


def envsecretlist(name: str) -> list[str]:
    """Old keys kept for reading: NAME comma-separated, or NAME_FILE one per line (blank lines skipped).

    An empty entry (a stray comma), or one holding a comma, whitespace or a control character, is
    refused: it is a pasting mistake that would otherwise drop a key silently. Errors give the
    entry's position, never its value.
    """
    value = _raw(name)
    path = _raw(f"{name}_FILE")
    if value and path:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    if value:
        entries, where = [item.strip() for item in value.split(",")], name
    elif path:
        content = envsecret(name) or ""  # reads the file, refusing one that is missing or empty
        entries, where = [line.strip() for line in content.splitlines() if line.strip()], f"{name}_FILE"
    else:
        return []
    for number, entry in enumerate(entries, start=1):
        if not entry:
            raise ImproperlyConfigured(f"{where}: entry {number} of {len(entries)} is empty (a stray comma?).")
        if "," in entry or not entry.isprintable() or any(char.isspace() for char in entry):
            raise ImproperlyConfigured(
                f"{where}: entry {number} of {len(entries)} holds a comma, a space or a control character; "
                f"{'put one key on each line' if path else 'separate keys with commas'}."
            )
    return list(dict.fromkeys(entries))


def envurl(name: str, default: str) -> str:
    value = envstr(name, default).rstrip("/")
    if not value.startswith(("http://", "https://")) or value[-3:] == "://":
        raise ImproperlyConfigured(f"{name}={value!r} must be an absolute http(s) URL.")
    return value


def read_or_create_secret(path: Path, nbytes: int = 48) -> str:
    """Return the secret kept in ``path``, creating it (mode 0600) on first use."""
    try:
        content = path.read_text().strip()
        if content:
            return content
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(nbytes)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        # link() fails if another process (a second worker) created it first: keep theirs.
        os.link(temp, path)
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        os.unlink(temp)
    if not value:
        raise ImproperlyConfigured(f"{path} exists but is empty; delete it or put a secret in it.")
    return value


def envfilemode(name: str, default: int) -> int:
    """An octal file mode such as 0640; world access is refused (the file holds password hashes)."""
    value = _raw(name)
    if not value:
        return default
    try:
        mode = int(value, 8)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an octal file mode such as 0640.") from None
    if mode & 0o007 or not 0 < mode <= 0o777:
        raise ImproperlyConfigured(f"{name}={value!r} must not give others any access (e.g. 0640 or 0600).")
    return mode


def cache_config(url: str) -> dict:
    """Django's CACHES entry for ``CACHE_URL``: Redis in production, the database in the embedded default.

    Both are shared by every worker and host; a per-process cache would let each gunicorn
    worker count failed sign-ins on its own, so it is refused.
    """
    scheme = url.partition("://")[0].lower()
    if scheme in {"redis", "rediss"}:
        # Short socket timeouts: a Redis that stops answering must fail a request fast, never hang it.
        options = {"socket_connect_timeout": 2, "socket_timeout": 2, "health_check_interval": 30}
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url, "OPTIONS": options}
    if scheme == "db" and url.lower().rstrip("/") == "db:":
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CACHE_TABLE,
            # Django's default (300 entries, cull on every set past it) would forget counts under attack.
            "OPTIONS": {"MAX_ENTRIES": 200_000, "CULL_FREQUENCY": 4},
        }
    raise ImproperlyConfigured(
        f"CACHE_URL={url!r}: use redis://host:6379/0 (or rediss://) in production, or db:// for the database cache."
    )


CONN_MAX_AGE = 600  # seconds a worker keeps its database connection
CACHE_TABLE = "registryadmin_cache"  # made by a migration: the documented start runs only migrate


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist, and take group/other access off if it does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            with contextlib.suppress(PermissionError):  # someone else's file: leave it to its owner
                os.chmod(path, 0o600)


def database_config(url: str) -> dict:
    """Django's DATABASES entry for ``DATABASE_URL``: SQLite (WAL, writers queued) or PostgreSQL.

    Connections persist (``CONN_MAX_AGE``): opening one, and closing a SQLite one (a WAL
    checkpoint), cost more than the token endpoint's whole decision. Both use the backends in
    ``registryadmin.backends``: PostgreSQL's health check without a round trip on a busy
    connection, SQLite's writers queued on a file lock instead of sleeping on busy.
    """
    try:
        config = dj_database_url.parse(url, conn_max_age=CONN_MAX_AGE, conn_health_checks=True)
    except Exception as exc:  # the parser raises several types for bad URLs
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} cannot be parsed: {exc}") from None
    engine = config.get("ENGINE", "")
    if engine.endswith("sqlite3"):
        config["ENGINE"] = "registryadmin.backends.sqlite3"
        if config["NAME"] not in {"", ":memory:"}:
            # SQLite makes the file (and its -wal/-shm, which copy its mode) 0644 under the usual umask:
            # it holds password hashes and wrapped keys, so it is made 0600 before the first connection.
            private_file(Path(config["NAME"]))
        config["OPTIONS"] = {
            # WAL + IMMEDIATE: readers never wait; writers queue on the backend's file lock, and the
            # busy timeout is only the backstop for a writer outside it (the sqlite3 shell, say).
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    elif engine.endswith("postgresql"):
        config["ENGINE"] = "registryadmin.backends.postgresql"
    else:
        raise ImproperlyConfigured(f"DATABASE_URL={url!r}: only sqlite:/// and postgres:// are supported.")
    return config


def envcrontab(name: str, default: str) -> crontab:
    """A five-field crontab (minute hour day-of-month month day-of-week) for the beat schedule."""
    spec = envstr(name, default)
    parts = spec.split()
    if len(parts) != 5:
        raise ImproperlyConfigured(f"{name}={spec!r} must be a 5-field crontab, e.g. '*/5 * * * *'.")
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    try:
        return crontab(minute, hour, day_of_week, day_of_month, month_of_year)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={spec!r} is not a valid crontab: {exc}") from None


def envldapuri(name: str) -> str:
    """One or more space-separated ldap://, ldaps:// or ldapi:// URIs; empty = LDAP off."""
    value = envstr(name, "")
    for uri in value.split():
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme.lower() not in {"ldap", "ldaps", "ldapi"} or (scheme.lower() != "ldapi" and not rest):
            raise ImproperlyConfigured(f"{name}={value!r}: use ldap://host:389, ldaps://host:636 or ldapi://.")
    return value


def _dn_key(dn: str) -> str:
    return ldap.dn.dn2str(ldap.dn.str2dn(dn)).lower()


def envdn(name: str, *, required: bool = False, within: str = "") -> str:
    """A distinguished name such as ou=people,dc=example,dc=org, checked by python-ldap's parser.

    With ``within``, the DN must be that base or under it.
    """
    value = envstr(name, "")
    if not value:
        if required:
            raise ImproperlyConfigured(
                f"{name} is required when LDAP_SERVER_URI is set (e.g. ou=people,dc=example,dc=org)."
            )
        return ""
    if not ldap.dn.is_dn(value) or "=" not in value:
        raise ImproperlyConfigured(f"{name}={value!r} is not a distinguished name (e.g. ou=people,dc=example,dc=org).")
    if within and not (_dn_key(value) == _dn_key(within) or _dn_key(value).endswith("," + _dn_key(within))):
        raise ImproperlyConfigured(f"{name}={value!r} is outside LDAP_GROUP_SEARCH_BASE={within!r}.")
    return value


USER_FILTER_ATTRIBUTE = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9-]*)\s*=\s*%\(user\)s\s*\)")


def envldapfilter(name: str, default: str) -> str:
    """An LDAP filter holding ``(attribute=%(user)s)``: the attribute is the username (the sync lists people by it)."""
    value = envstr(name, default)
    if value.count("(") != value.count(")") or not value.startswith("(") or not USER_FILTER_ATTRIBUTE.search(value):
        raise ImproperlyConfigured(
            f"{name}={value!r} must be an LDAP filter holding (attribute=%(user)s), e.g. (uid=%(user)s)."
        )
    try:
        value % {"user": "x"}
    except (KeyError, ValueError, TypeError):
        raise ImproperlyConfigured(
            f"{name}={value!r}: the only placeholder allowed is %(user)s (write % as %%)."
        ) from None
    return value


def envrecipients(name: str) -> list[str]:
    """age recipients (``age1...`` or ``ssh-ed25519 ...``/``ssh-rsa ...`` public keys): NAME comma-separated,
    or NAME_FILE as age reads a recipients file (one a line, blank lines and ``#`` comments skipped).

    Each is parsed now, so a pasting mistake stops start-up naming the entry's position.
    """
    value = _raw(name)
    path = _raw(f"{name}_FILE")
    if value and path:
        raise ImproperlyConfigured(f"Set either {name} or {name}_FILE, not both.")
    if value:
        entries, where = [item.strip() for item in value.split(",")], name
    elif path:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc.strerror}.") from None
        entries, where = (
            [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")],
            f"{name}_FILE",
        )
    else:
        return []
    for number, entry in enumerate(entries, start=1):
        kind = pyrage.ssh.Recipient if entry.startswith("ssh-") else pyrage.x25519.Recipient
        try:
            kind.from_str(entry)
        except (pyrage.RecipientError, ValueError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"{where}: entry {number} of {len(entries)} is not an age recipient (age1... or an ssh-ed25519/ssh-rsa "
                f"public key): {exc}."
            ) from None
    return list(dict.fromkeys(entries))


def envreadablefile(name: str) -> str:
    value = envstr(name, "")
    if value and not os.access(value, os.R_OK):
        raise ImproperlyConfigured(f"{name}={value!r} cannot be read.")
    return value


SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
CONSOLE_BACKEND = "django.core.mail.backends.console.EmailBackend"
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
MAIL_TIMEOUT = 10  # seconds: an SMTP server that stops answering must not hold a worker for long
_SMTP_PORTS = {"smtp": 25, "smtp+tls": 587, "smtps": 465}
# The separate names; EMAIL_URL carries all of them, so none may stand beside it.
EMAIL_HOST_NAMES = (
    "EMAIL_HOST",
    "EMAIL_PORT",
    "EMAIL_HOST_USER",
    "EMAIL_HOST_PASSWORD",
    "EMAIL_HOST_PASSWORD_FILE",
    "EMAIL_USE_TLS",
    "EMAIL_USE_SSL",
    "EMAIL_TIMEOUT",
)


class EmailSettings(TypedDict):
    """Django's outgoing-mail settings, by their Django names."""

    EMAIL_BACKEND: str
    EMAIL_HOST: str
    EMAIL_PORT: int
    EMAIL_HOST_USER: str
    EMAIL_HOST_PASSWORD: str
    EMAIL_USE_TLS: bool
    EMAIL_USE_SSL: bool
    EMAIL_TIMEOUT: int
    EMAIL_FILE_PATH: str


def _mail_settings(
    backend: str,
    *,
    host: str = "localhost",
    port: int = 25,
    user: str = "",
    password: str = "",
    use_tls: bool = False,
    use_ssl: bool = False,
    timeout: int = MAIL_TIMEOUT,
    file_path: str = "",
) -> EmailSettings:
    return {
        "EMAIL_BACKEND": backend,
        "EMAIL_HOST": host,
        "EMAIL_PORT": port,
        "EMAIL_HOST_USER": user,
        "EMAIL_HOST_PASSWORD": password,
        "EMAIL_USE_TLS": use_tls,
        "EMAIL_USE_SSL": use_ssl,
        "EMAIL_TIMEOUT": timeout,
        "EMAIL_FILE_PATH": file_path,
    }


def _shown(url: str) -> str:
    """What an error message shows of ``url``: its scheme and host, nothing else.

    Errors end up in logs, and in a malformed URL any other part may be a password (one with an
    unencoded ``/`` or ``#`` shifts everything after it); the user goes too, as some providers take
    an API key as the user name.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url.partition(":")[0] + ":..."
    host = re.split(r"[/?#]", rest.rpartition("@")[2], maxsplit=1)[0]
    host = host.partition("]")[0] + "]" if host.startswith("[") else host.partition(":")[0]
    return f"{scheme}://{host}..."


def _url_query(query: str, shown: str) -> dict[str, str]:
    """The parameters of an smtp URL: tls, ssl (booleans) and timeout (seconds)."""
    values: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in {"tls", "ssl", "timeout"}:
            # The name is not echoed: after a password's unencoded "?", the password is a "name".
            raise ImproperlyConfigured(f"EMAIL_URL ({shown}): the only parameters are tls, ssl and timeout.")
        values[key] = value.strip().lower()
    for key in ("tls", "ssl"):
        if values.get(key, "") not in _TRUE | _FALSE:
            raise ImproperlyConfigured(f"EMAIL_URL ({shown}): {key} must be true or false.")
    timeout = values.get("timeout", str(MAIL_TIMEOUT))
    if not timeout.isdigit() or not 1 <= int(timeout) <= 3600:
        raise ImproperlyConfigured(f"EMAIL_URL ({shown}): timeout must be whole seconds from 1 to 3600.")
    return values | {"timeout": timeout}


def email_config(url: str) -> EmailSettings:
    """Django's EMAIL_* settings for ``EMAIL_URL``.

    ``smtp://user:password@host:25`` (user and password percent-decoded), ``smtp+tls://host:587`` or
    ``?tls=true`` for STARTTLS, ``smtps://host:465`` (or ``?ssl=true``) for TLS from the first byte,
    ``?timeout=N`` seconds; ``console://`` prints each mail, ``file:///abs/dir`` writes one file each.
    Errors show only the URL's scheme and host: never a password.
    """
    shown = _shown(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ImproperlyConfigured(f"EMAIL_URL ({shown}) cannot be parsed.") from None
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"EMAIL_URL ({shown}): the port must be a number from 1 to 65535.") from None
    scheme = parts.scheme.lower()
    if scheme in {"console", "file"}:
        if parts.query or parts.netloc or (scheme == "console" and parts.path.strip("/")):
            raise ImproperlyConfigured(f"EMAIL_URL ({shown}): use console:// or file:///absolute/directory.")
        if scheme == "console":
            return _mail_settings(CONSOLE_BACKEND)
        if not parts.path.startswith("/") or parts.path == "/":
            raise ImproperlyConfigured(f"EMAIL_URL ({shown}): use file:///absolute/directory.")
        return _mail_settings(FILE_BACKEND, file_path=unquote(parts.path))
    if scheme not in _SMTP_PORTS:
        raise ImproperlyConfigured(
            f"EMAIL_URL ({shown}): use smtp://, smtp+tls:// (STARTTLS), smtps:// (TLS), console:// or file:///dir."
        )
    if not parts.hostname or port == 0 or parts.path.strip("/"):
        raise ImproperlyConfigured(f"EMAIL_URL ({shown}) must be {scheme}://[user:password@]host[:port].")
    query = _url_query(parts.query, shown)
    use_tls = scheme == "smtp+tls" or query.get("tls") in _TRUE
    use_ssl = scheme == "smtps" or query.get("ssl") in _TRUE
    if use_tls and use_ssl:
        raise ImproperlyConfigured(
            f"EMAIL_URL ({shown}): choose STARTTLS (smtp+tls://, port 587) or TLS (smtps://, port 465), not both."
        )
    return _mail_settings(
        SMTP_BACKEND,
        host=parts.hostname,
        port=port or _SMTP_PORTS[scheme],
        user=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        use_tls=use_tls,
        use_ssl=use_ssl,
        timeout=int(query["timeout"]),
    )


def envemail() -> EmailSettings:
    """The outgoing-mail settings: ``EMAIL_URL`` (or ``_FILE``), or ``EMAIL_HOST`` and its companions.

    With neither, the console backend prints every mail in the server's output, so a checkout that
    has no mail server still shows what would have been sent.
    """
    url = envsecret("EMAIL_URL")
    beside = [name for name in EMAIL_HOST_NAMES if _raw(name)]
    if url and beside:
        raise ImproperlyConfigured(f"Set either EMAIL_URL or {', '.join(beside)}, not both: EMAIL_URL says it all.")
    if url:
        return email_config(url)
    host = envstr("EMAIL_HOST")
    if not host:
        if beside:
            raise ImproperlyConfigured(f"{', '.join(beside)} set without EMAIL_HOST (or use EMAIL_URL).")
        return _mail_settings(CONSOLE_BACKEND)
    if not re.fullmatch(r"[A-Za-z0-9._:-]+", host):
        # Not echoed: a URL pasted here may hold a password.
        raise ImproperlyConfigured("EMAIL_HOST must be a host name such as smtp.example.org (URLs go in EMAIL_URL).")
    use_tls, use_ssl = envbool("EMAIL_USE_TLS", False), envbool("EMAIL_USE_SSL", False)
    if use_tls and use_ssl:
        raise ImproperlyConfigured("EMAIL_USE_TLS and EMAIL_USE_SSL are both true: choose one (587 STARTTLS, 465 TLS).")
    return _mail_settings(
        SMTP_BACKEND,
        host=host,
        port=envint("EMAIL_PORT", 25, minimum=1, maximum=65535),
        user=envstr("EMAIL_HOST_USER"),
        password=envsecret("EMAIL_HOST_PASSWORD") or "",
        use_tls=use_tls,
        use_ssl=use_ssl,
        timeout=envint("EMAIL_TIMEOUT", MAIL_TIMEOUT, minimum=1, maximum=3600),
    )


def mail_domain(host: str) -> str:
    """``host`` as the domain of an address: an IP address goes in brackets (RFC 5321's address literal)."""
    with contextlib.suppress(ValueError):
        return f"[{ipaddress.ip_address(host)}]"
    return host


def _is_one_address(text: str) -> bool:
    addresses = getaddresses([text])
    if len(addresses) != 1 or "\n" in text or "\r" in text:
        return False
    try:
        validate_email(addresses[0][1])
    except ValidationError:
        return False
    return True


def envmailbox(name: str, default: str) -> str:
    """One address, bare or with a display name: ``ops@example.org`` or ``Registry <ops@example.org>``."""
    value = envstr(name, default)
    if not _is_one_address(value):
        raise ImproperlyConfigured(
            f"{name}={value!r} is not one e-mail address (e.g. registryadmin@example.org or Ops <ops@example.org>)."
        )
    return value
