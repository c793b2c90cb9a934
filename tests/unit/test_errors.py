"""One error family (errors.py): what the CLI reports is an EscalateError with its message and
exit status — bad input 2, a failure to wait out or fix 1 — so cli._translate_errors catches one class."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from escalate import clock, errors
from escalate.cli import main
from escalate.config import ConfigError
from escalate.engine import drill
from escalate.ingest.mailbox import MailboxUnavailable
from escalate.ops.instance import AlreadyRunning
from escalate.outbound.templates import TemplateProblem
from escalate.ingest.mailfiles import NotAMailStore
from escalate.ops.initdir import InitError
from escalate.reports import queries
from escalate.rules.loader import RulesError
from escalate.store import db
from escalate.tickets.actions import NotOnRoster
from escalate.tickets.lifecycle import TicketStateError


@pytest.mark.parametrize("kind", [ConfigError, RulesError, TemplateProblem, queries.NotFound, TicketStateError,
                                  db.DatabaseUrlError, clock.BadTime, drill.DrillError, InitError, NotAMailStore,
                                  NotOnRoster])
def test_bad_input_exits_2(kind):
    assert issubclass(kind, errors.InputError) and kind.exit_code == 2


@pytest.mark.parametrize("kind", [MailboxUnavailable, AlreadyRunning])
def test_a_failure_exits_1_and_keeps_its_builtin_base(kind):
    assert issubclass(kind, errors.EscalateError) and not issubclass(kind, errors.InputError)
    assert kind.exit_code == 1 and issubclass(kind, RuntimeError)  # code catching RuntimeError still does


def test_the_mailbox_error_says_what_to_check():
    assert MailboxUnavailable("connection refused").message() == (
        "connection refused: is the IMAP server up and ESCALATE_IMAP_URL right?")


def test_the_cli_reports_one_line_and_the_status(monkeypatch, tmp_path):
    monkeypatch.setenv("ESCALATE_DB_URL", "mysql://nowhere/db")  # a DatabaseUrlError: bad input
    monkeypatch.setenv("ESCALATE_RULES", str(tmp_path / "rules.yaml"))
    result = CliRunner().invoke(main, ["tickets", "list"])
    assert result.exit_code == 2, result.output
    assert "Error: ESCALATE_DB_URL: unsupported database 'mysql'" in result.output
