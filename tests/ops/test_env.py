"""The typed settings readers in registryadmin/env.py, called directly (test_settings starts whole processes)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

from registryadmin.env import database_config, envbool, envcrontab, envint, envpassphrase, envrecipients


def test_a_sqlite_url_gets_wal_immediate_transactions_queued_writers_and_kept_connections(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "db.sqlite3"
    config = database_config(f"sqlite:///{path}")
    assert config["ENGINE"] == "registryadmin.backends.sqlite3"
    assert config["NAME"] == str(path)
    assert path.parent.is_dir()  # made, so the first migrate can create the file
    assert config["CONN_MAX_AGE"] == 600  # a checkpoint on every close cost ~1 ms a request
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert config["OPTIONS"]["timeout"] == 30
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


def test_the_sqlite_init_command_is_valid_sql(tmp_path: Path) -> None:
    config = database_config(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    with sqlite3.connect(config["NAME"]) as connection:
        connection.executescript(config["OPTIONS"]["init_command"])
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_postgres_url_keeps_connections_and_checks_them() -> None:
    config = database_config("postgres://ra:secret@db.example.org:6543/registryadmin")
    assert config["ENGINE"] == "registryadmin.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == (
        "db.example.org",
        6543,
        "registryadmin",
        "ra",
    )
    assert config["CONN_MAX_AGE"] == 600
    assert config["CONN_HEALTH_CHECKS"] is True


@pytest.mark.parametrize("url", ["mysql://root@localhost/x", "oracle://u:p@h/db"])
def test_other_databases_are_refused_by_name(url: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="only sqlite:/// and postgres:// are supported"):
        database_config(url)


def test_an_unparsable_url_names_the_variable() -> None:
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL='nonsense' cannot be parsed"):
        database_config("nonsense")


def test_a_crontab_is_read_minute_hour_day_month_weekday(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULE_X", "15 3 1 2 6")
    assert envcrontab("SCHEDULE_X", "* * * * *") == crontab("15", "3", "6", "1", "2")


def test_an_unset_or_empty_crontab_takes_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCHEDULE_X", raising=False)
    assert envcrontab("SCHEDULE_X", "*/5 * * * *") == crontab(minute="*/5")
    monkeypatch.setenv("SCHEDULE_X", "  ")
    assert envcrontab("SCHEDULE_X", "0 4 * * *") == crontab("0", "4")


@pytest.mark.parametrize("spec", ["every five minutes", "* * * *", "* * * * * *"])
def test_a_crontab_without_five_fields_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv("SCHEDULE_X", spec)
    with pytest.raises(ImproperlyConfigured, match=r"SCHEDULE_X=.* must be a 5-field crontab"):
        envcrontab("SCHEDULE_X", "* * * * *")


def test_a_crontab_field_out_of_range_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEDULE_X", "61 * * * *")
    with pytest.raises(ImproperlyConfigured, match="SCHEDULE_X='61 \\* \\* \\* \\*' is not a valid crontab"):
        envcrontab("SCHEDULE_X", "* * * * *")


def test_booleans_and_bounded_integers_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLAG", "Yes")
    assert envbool("FLAG", False) is True
    monkeypatch.setenv("FLAG", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="FLAG='perhaps' is not a boolean"):
        envbool("FLAG", False)
    monkeypatch.setenv("TTL", "5")
    with pytest.raises(ImproperlyConfigured, match=r"TTL=5 is out of range \[60, None\]"):
        envint("TTL", 300, minimum=60)


def test_a_passphrase_is_taken_exactly_as_given_from_the_variable_or_its_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BACKUP_KEY", "  two words  ")
    assert envpassphrase("BACKUP_KEY") == "  two words  "
    monkeypatch.delenv("BACKUP_KEY")
    assert envpassphrase("BACKUP_KEY") == ""
    secret = tmp_path / "key"
    secret.write_text(" from a file \n")
    monkeypatch.setenv("BACKUP_KEY_FILE", str(secret))
    assert envpassphrase("BACKUP_KEY") == " from a file "  # only the editor's final line break goes
    monkeypatch.setenv("BACKUP_KEY", "both")
    with pytest.raises(ImproperlyConfigured, match="either BACKUP_KEY or BACKUP_KEY_FILE"):
        envpassphrase("BACKUP_KEY")
    monkeypatch.delenv("BACKUP_KEY")
    secret.write_text("\n")
    with pytest.raises(ImproperlyConfigured, match=r"BACKUP_KEY_FILE=.* is empty"):
        envpassphrase("BACKUP_KEY")
    secret.unlink()
    with pytest.raises(ImproperlyConfigured, match=r"BACKUP_KEY_FILE=.* cannot be read"):
        envpassphrase("BACKUP_KEY")


def test_backup_recipients_are_parsed_at_start_up_and_a_bad_one_is_named_by_position(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    good = "age1j8qzwmvc82r3gwzkehzphmrxdcqlzfr0ftnhdc720v84xq8hu96q0u3u7n"
    monkeypatch.setenv("BACKUP_RECIPIENTS", f"{good}, {good}")
    assert envrecipients("BACKUP_RECIPIENTS") == [good]
    monkeypatch.setenv("BACKUP_RECIPIENTS", f"{good},age1typo")
    with pytest.raises(ImproperlyConfigured, match="BACKUP_RECIPIENTS: entry 2 of 2 is not an age recipient"):
        envrecipients("BACKUP_RECIPIENTS")
    monkeypatch.delenv("BACKUP_RECIPIENTS")
    listed = tmp_path / "recipients.txt"
    listed.write_text(f"# ops team\n{good}\n\n")
    monkeypatch.setenv("BACKUP_RECIPIENTS_FILE", str(listed))
    assert envrecipients("BACKUP_RECIPIENTS") == [good]
