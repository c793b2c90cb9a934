"""The CLI contract: help, exit codes, --now, --json shapes, and the README's commands."""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path

from click.testing import CliRunner
from escalate import __version__
from escalate.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(*args: str, env: dict[str, str] | None = None, expect: int = 0):
    result = CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)
    assert result.exit_code == expect, result.output
    return result


def created_database(tmp_path: Path) -> str:
    """A database made as an admin makes one (`db migrate`): no other command creates it."""
    url = f"sqlite:///{tmp_path / 'x.db'}"
    run("db", "migrate", env={"ESCALATE_DB_URL": url})
    return url


def test_version_and_help():
    assert __version__ in run("--version").output
    help_text = run("--help").output
    for command in ("init", "run", "tickets", "rules", "outbox", "quarantine", "demo"):
        assert command in help_text


def test_init_writes_rules_env_and_database(tmp_path: Path):
    target = tmp_path / "site"
    out = run("init", str(target), env={"ESCALATE_DB_URL": ""}).output
    assert (target / "rules.yaml").read_text() == (REPO / "rules.yaml").read_text()
    env_text = (target / "escalate.env").read_text()
    for name in ("ESCALATE_IMAP_URL", "ESCALATE_SMTP_URL", "ESCALATE_DB_URL", "ESCALATE_RULES", "ESCALATE_SECRET"):
        assert re.search(rf"^{name}=\S+", env_text, re.M), name
    assert stat.S_IMODE((target / "escalate.env").stat().st_mode) == 0o600
    assert (target / "escalate.db").exists()
    assert "config check" in out
    # it never overwrites silently
    assert "exists" in run("init", str(target), expect=2).output
    # the written files work together: the rules check passes and the database lists no tickets
    env_file = str(target / "escalate.env")
    run("--env-file", env_file, "rules", "check")
    assert json.loads(run("--env-file", env_file, "tickets", "list", "--json").output) == []


def test_rules_check_reports_file_line_and_reason(tmp_path: Path):
    good = run("rules", "check", str(REPO / "rules.yaml")).output
    assert good.splitlines()[0].endswith(": ok")
    bad = tmp_path / "rules.yaml"
    bad.write_text(re.sub(r"(?m)^(\s+repeat_every:) 10m$", r"\1 soon", (REPO / "rules.yaml").read_text(), count=1))
    result = run("rules", "check", str(bad), expect=2)
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "repeat_every: soon" in text)
    assert re.search(rf"{re.escape(str(bad))}:{line}:\d+: .*repeat_every: expected a duration like \"30m\", got \"soon\"",
                     result.output)


def test_bad_now_is_bad_usage(tmp_path: Path):
    result = run("tickets", "list", "--now", "yesterday", expect=2,
                 env={"ESCALATE_DB_URL": created_database(tmp_path)})
    assert "ISO-8601" in result.output


def test_unknown_ticket_is_bad_input(tmp_path: Path):
    result = run("tickets", "show", "T-99", expect=2, env={"ESCALATE_DB_URL": created_database(tmp_path)})
    assert "no ticket T-99" in result.output


def test_run_without_a_mailbox_says_what_to_set(tmp_path: Path):
    result = run("run", "--once", expect=2, env={
        "ESCALATE_DB_URL": created_database(tmp_path), "ESCALATE_RULES": str(REPO / "rules.yaml"),
        "ESCALATE_SECRET": "x" * 32, "ESCALATE_IMAP_URL": "", "ESCALATE_SMTP_URL": ""})
    assert "ESCALATE_IMAP_URL is not set" in result.output


def test_run_without_a_secret_refuses(tmp_path: Path):
    result = run("run", "--once", expect=2, env={
        "ESCALATE_DB_URL": created_database(tmp_path), "ESCALATE_RULES": str(REPO / "rules.yaml"),
        "ESCALATE_SECRET": "", "ESCALATE_IMAP_URL": "imap://u:p@127.0.0.1:1/INBOX"})
    assert "ESCALATE_SECRET is not set" in result.output


def test_unreachable_imap_is_a_runtime_failure(tmp_path: Path):
    result = run("run", "--once", expect=1, env={
        "ESCALATE_DB_URL": created_database(tmp_path), "ESCALATE_RULES": str(REPO / "rules.yaml"),
        "ESCALATE_SECRET": "x" * 32, "ESCALATE_IMAP_URL": "imap://u:p@127.0.0.1:1/INBOX",
        "ESCALATE_SMTP_URL": "smtp://127.0.0.1:1"})
    assert "IMAP" in result.output and ":p@" not in result.output
