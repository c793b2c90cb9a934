"""`escalate config check` against the real Dovecot and aiosmtpd servers and a real database: the
all-ok case, then one fault injected at a time — each fails its own check only, with a line that
says what is wrong, and exit 1; a configuration that cannot be read exits 2. The check sends no
mail and leaves the database as it was."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main

CHECKS = ["settings", "secret", "imap login", "imap folders", "smtp", "database", "rules", "templates"]


def config_check(env: dict[str, str], *args: str) -> tuple[int, dict[str, tuple[bool, str]]]:
    result = CliRunner().invoke(main, [*args, "config", "check", "--json"], env=env, catch_exceptions=False)
    rows = json.loads(result.output)
    assert all(set(row) == {"check", "ok", "detail"} for row in rows), rows  # the shape scripts rely on
    return result.exit_code, {row["check"]: (row["ok"], row["detail"]) for row in rows}


def only_failure(env: dict[str, str], check: str) -> str:
    """Exit 1, `check` failed and every other check passed; the failing check's detail."""
    code, found = config_check(env)
    assert code == 1, found
    assert [name for name, (ok, _) in found.items() if not ok] == [check], found
    detail = found[check][1]
    assert "\n" not in detail
    return detail


def file_digest(url: str) -> str:
    return hashlib.sha256(Path(url.removeprefix("sqlite:///")).read_bytes()).hexdigest()


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_all_ok_sends_nothing_and_changes_nothing(env, smtp_sink, database_url):
    before = file_digest(database_url) if database_url.startswith("sqlite") else None
    code, found = config_check(env)
    assert code == 0, found
    assert list(found) == CHECKS
    assert all(ok for ok, _ in found.values()), found
    assert "schema at migration" in found["database"][1]
    assert smtp_sink.messages == [] and smtp_sink.attempts == 0
    if before is not None:
        assert file_digest(database_url) == before
    # people get one line per check, "ok" first
    text = CliRunner().invoke(main, ["config", "check"], env=env, catch_exceptions=False)
    assert text.exit_code == 0
    assert [line.split()[0] for line in text.output.splitlines()] == ["ok"] * len(CHECKS)


def test_wrong_imap_password(env, dovecot):
    env["ESCALATE_IMAP_URL"] = dovecot.url().replace("support-pw", "not-the-password")
    code, found = config_check(env)
    assert code == 1
    ok, detail = found["imap login"]
    assert not ok and "imap://support:***@" in detail and "user and password in ESCALATE_IMAP_URL" in detail
    assert "not-the-password" not in json.dumps(found)
    assert "imap folders" not in found  # nothing to list without a login
    assert [name for name, (ok, _) in found.items() if not ok] == ["imap login"]


def test_missing_imap_folder(env, dovecot):
    env["ESCALATE_IMAP_URL"] = dovecot.url().rsplit("/", 1)[0] + "/INBOX,Support"
    detail = only_failure(env, "imap folders")
    assert "no folder Support on the server (it has INBOX)" in detail


def test_smtp_down(env, smtp_sink):
    smtp_sink.stop()
    detail = only_failure(env, "smtp")
    assert detail.startswith(f"SMTP smtp://127.0.0.1:{smtp_sink.port}: ")


@pytest.mark.parametrize("smtp_sink", [{"login": ("escalate", "smtp-pw")}], indirect=True)
def test_smtp_login(env, smtp_sink):
    code, found = config_check(env)
    assert code == 0 and "accepted the login" in found["smtp"][1]
    smtp_sink.login = ("escalate", "changed-on-the-server")
    detail = only_failure(env, "smtp")
    assert "refused the login (535" in detail and "ESCALATE_SMTP_URL" in detail and "smtp-pw" not in detail
    assert smtp_sink.messages == []


def test_database_not_migrated(env, database_url):
    path = database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        latest = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        connection.execute("DELETE FROM schema_migrations WHERE version = ?", (latest,))
        previous = connection.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
    detail = only_failure(env, "database")
    assert f"schema at migration {previous}, 1 pending (up to {latest}): run `escalate db migrate`" in detail
    with sqlite3.connect(path) as connection:  # the check itself migrated nothing
        assert connection.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == previous


def test_database_missing_or_empty(env, tmp_path, postgres):
    env["ESCALATE_DB_URL"] = f"sqlite:///{tmp_path / 'typo' / 'escalate.db'}"
    assert "no escalate database at" in only_failure(env, "database")
    assert not (tmp_path / "typo").exists()
    env["ESCALATE_DB_URL"] = postgres.create_database()
    assert "holds no escalate tables" in only_failure(env, "database")


def test_broken_rules_name_file_and_line(env, rules_file):
    from tests.conftest import TEST_RULES

    broken = rules_file(TEST_RULES.replace("repeat_every: 10m", "repeat_every: soon"), name="broken.yaml")
    env["ESCALATE_RULES"] = str(broken)
    line = next(n for n, text in enumerate(broken.read_text().splitlines(), 1) if "repeat_every: soon" in text)
    detail = only_failure(env, "rules")
    assert f"{broken}:{line}:" in detail and "repeat_every" in detail


def test_template_override_that_does_not_render(env, tmp_path):
    overrides = tmp_path / "templates"
    overrides.mkdir()
    (overrides / "escalation.txt.j2").write_text("Ticket {{ ticket.no_such_field }}\n")
    env["ESCALATE_TEMPLATES"] = str(overrides)
    detail = only_failure(env, "templates")
    assert "escalation.txt.j2" in detail and "no_such_field" in detail


def test_weak_secret(env):
    env["ESCALATE_SECRET"] = "0123456789abcdef"
    assert "ESCALATE_SECRET has 8 bytes of key material, fewer than the 32 needed" in only_failure(env, "secret")


def test_bad_url_and_bad_setting(env):
    env["ESCALATE_SMTP_URL"] = "smpt://127.0.0.1:25"
    env["ESCALATE_POLL_SECONDS"] = "soon"
    code, found = config_check(env)
    assert code == 1
    assert found["smtp"] == (False, "ESCALATE_SMTP_URL: expected a URL starting with smtp:// or smtps:// or "
                                    "smtp+starttls://, got smpt://")
    assert found["settings"] == (False, "ESCALATE_POLL_SECONDS: expected a number of seconds, got 'soon'")


def test_configuration_that_cannot_be_read_exits_2(env, tmp_path):
    missing = CliRunner().invoke(main, ["--env-file", str(tmp_path / "nope.env"), "config", "check"], env=env)
    assert missing.exit_code == 2
    assert missing.output.strip() == f"Error: env file {tmp_path / 'nope.env'} does not exist (write one with `escalate init DIR`)"
    malformed = tmp_path / "escalate.env"
    malformed.write_text("ESCALATE_SECRET=x\nthis is not a setting\n")
    result = CliRunner().invoke(main, ["--env-file", str(malformed), "config", "check", "--json"], env=env)
    assert (result.exit_code, result.output.strip()) == (2, f"Error: {malformed}:2: expected KEY=VALUE")
