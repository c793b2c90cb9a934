"""A database that is not there fails loudly: every command but `init` and `db migrate` names the
URL it tried and exits 2, and creates nothing — no directory, no empty database file."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main

REPO = Path(__file__).resolve().parents[2]

COMMANDS = [
    ("status",), ("status", "--json"), ("tickets", "list"), ("tickets", "show", "T-1"), ("run", "--once"),
    ("outbox", "list"), ("outbox", "retry"), ("quarantine", "list"), ("report",), ("rules", "explain", "T-1"),
    ("chat", "list"), ("drill", "--tier", "1"),
]


def invoke(*args: str, env: dict[str, str]):
    return CliRunner().invoke(main, list(args), env={
        "ESCALATE_RULES": str(REPO / "rules.yaml"), "ESCALATE_SECRET": secrets.token_hex(32),
        "ESCALATE_IMAP_URL": "imap://u:p@127.0.0.1:1/INBOX", "ESCALATE_SMTP_URL": "smtp://127.0.0.1:1", **env},
        catch_exceptions=False)


def one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_a_mistyped_sqlite_path_is_refused_and_nothing_is_created(tmp_path: Path, args: tuple[str, ...]):
    url = f"sqlite:///{tmp_path / 'nonexistent' / 'dir' / 'x.db'}"
    result = invoke(*args, env={"ESCALATE_DB_URL": url})
    assert result.exit_code == 2, result.output
    line = one_line(result.output)
    assert line.startswith(f"Error: no escalate database at {url} (ESCALATE_DB_URL)"), line
    assert "escalate init" in line and "escalate db migrate" in line
    assert not (tmp_path / "nonexistent").exists()


def test_status_without_configuration_creates_no_database_in_the_working_directory(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    result = CliRunner().invoke(main, ["status"], env={"ESCALATE_DB_URL": None, "ESCALATE_ENV_FILE": None},
                                catch_exceptions=False)
    assert result.exit_code == 2
    assert one_line(result.output).startswith(f"Error: no escalate database at sqlite:///{tmp_path / 'escalate.db'} ")
    assert list(tmp_path.iterdir()) == []


def test_an_empty_file_is_not_an_escalate_database(tmp_path: Path):
    (tmp_path / "x.db").touch()
    result = invoke("tickets", "list", env={"ESCALATE_DB_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.exit_code == 2
    assert "holds no escalate tables" in one_line(result.output)


def test_init_and_db_migrate_create_it_and_then_the_others_work(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'state' / 'escalate.db'}"
    assert invoke("db", "migrate", env={"ESCALATE_DB_URL": url}).exit_code == 0
    listed = invoke("tickets", "list", "--json", env={"ESCALATE_DB_URL": url})
    assert (listed.exit_code, listed.output.strip()) == (0, "[]")
    site = tmp_path / "site"
    assert invoke("init", str(site), env={"ESCALATE_DB_URL": ""}).exit_code == 0
    # status reads the new database (3: it works, and says no daemon runs yet)
    assert invoke("--env-file", str(site / "escalate.env"), "status", env={"ESCALATE_DB_URL": None}).exit_code == 3


def test_a_postgresql_database_that_does_not_exist_or_is_empty(postgres):
    empty = postgres.create_database()
    missing = empty.rsplit("/", 1)[0] + "/escalate_no_such_database"
    result = invoke("status", env={"ESCALATE_DB_URL": missing})
    assert result.exit_code == 2
    line = one_line(result.output)
    assert "no escalate database at postgresql://" in line and "escalate_no_such_database" in line
    assert "does not exist" in line
    result = invoke("tickets", "list", env={"ESCALATE_DB_URL": empty})
    assert result.exit_code == 2
    assert "holds no escalate tables" in one_line(result.output)
    # `db migrate` makes the empty database escalate's
    assert invoke("db", "migrate", env={"ESCALATE_DB_URL": empty}).exit_code == 0
    assert invoke("tickets", "list", env={"ESCALATE_DB_URL": empty}).exit_code == 0
