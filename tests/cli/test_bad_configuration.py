"""Each bad configuration is one line that names the setting and what to do, with the exit status
scripts rely on: 2 for a configuration escalate cannot use (nothing is tried), 1 for a server that
cannot be reached (try again later). No line shows a password or the secret."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main

REPO = Path(__file__).resolve().parents[2]
SECRET = secrets.token_hex(32)

CASES = [
    # (setting overrides, command, exit status, the start of the one line)
    ({"ESCALATE_IMAP_URL": "imapx://u:pw1@127.0.0.1/INBOX"}, ("status",), 2,
     "Error: ESCALATE_IMAP_URL: expected a URL starting with imap:// or imaps:// or imap+starttls://, got imapx://"),
    ({"ESCALATE_SMTP_URL": "smtp://127.0.0.1:twentyfive"}, ("tickets", "list"), 2,
     "Error: ESCALATE_SMTP_URL: the port is not a number"),
    ({"ESCALATE_DB_URL": "mysql://u:pw1@127.0.0.1/escalate"}, ("status",), 2,
     "Error: ESCALATE_DB_URL: unsupported database 'mysql'; use sqlite:///path or postgresql://user:pass@host/dbname"),
    ({"ESCALATE_DB_URL": "postgresql://u:pw1@127.0.0.1/"}, ("status",), 2,
     "Error: ESCALATE_DB_URL: the postgresql URL names no database"),
    ({"ESCALATE_POLL_SECONDS": "soon"}, ("status",), 2, "Error: ESCALATE_POLL_SECONDS: expected a number of seconds, got 'soon'"),
    ({"ESCALATE_SECRET": "0123456789abcdef"}, ("run", "--once"), 2,
     "Error: ESCALATE_SECRET has 8 bytes of key material, fewer than the 32 needed"),
    ({"ESCALATE_SECRET": ""}, ("run", "--once"), 2, "Error: ESCALATE_SECRET is not set"),
    ({"ESCALATE_IMAP_URL": "imap://u:pw1@127.0.0.1:1/INBOX"}, ("run", "--once"), 1,
     "Error: IMAP imap://u:***@127.0.0.1:1/INBOX: [Errno 111] Connection refused: is the IMAP server up and "
     "ESCALATE_IMAP_URL right?"),
]


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'escalate.db'}"
    assert CliRunner().invoke(main, ["db", "migrate"], env={"ESCALATE_DB_URL": url}).exit_code == 0
    return url


@pytest.mark.parametrize("overrides, command, status, line", CASES, ids=[" ".join(c[1]) + " " + next(iter(c[0])) for c in CASES])
def test_bad_setting_is_one_line_and_its_exit_status(database: str, overrides, command, status, line):
    env = {"ESCALATE_DB_URL": database, "ESCALATE_RULES": str(REPO / "rules.yaml"), "ESCALATE_SECRET": SECRET,
           "ESCALATE_IMAP_URL": "imap://u:pw1@127.0.0.1:1/INBOX", "ESCALATE_SMTP_URL": "smtp://127.0.0.1:1", **overrides}
    result = CliRunner().invoke(main, list(command), env=env, catch_exceptions=False)
    assert result.exit_code == status, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), result.output
    assert "pw1" not in result.output and SECRET not in result.output


def test_unreadable_env_file_is_one_line_exit_2(tmp_path: Path):
    missing = CliRunner().invoke(main, ["--env-file", str(tmp_path / "nope.env"), "status"], env={})
    assert (missing.exit_code, missing.output.strip()) == (
        2, f"Error: env file {tmp_path / 'nope.env'} does not exist (write one with `escalate init DIR`)")
    malformed = tmp_path / "escalate.env"
    malformed.write_text("ESCALATE_SECRET=abc\nESCALATE_DB_URL sqlite:///x.db\n")
    result = CliRunner().invoke(main, ["--env-file", str(malformed), "tickets", "list"], env={})
    assert (result.exit_code, result.output.strip()) == (2, f"Error: {malformed}:2: expected KEY=VALUE")
