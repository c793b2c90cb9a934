"""`escalate tickets list` filters and sorting, `tickets show` for people, in text and JSON, on the
same hand-checked history as the report tests; and shell completion of these commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.store import db

from tests.cli.test_report import NOW, REPO, seed_history

CONTRACT = {"ref", "subject", "requester", "status", "severity", "tier", "created_at", "next_due_at", "message_count"}


@pytest.fixture
def run(tmp_path: Path):
    env = {"ESCALATE_DB_URL": f"sqlite:///{tmp_path / 'escalate.db'}", "ESCALATE_RULES": str(REPO / "rules.yaml"),
           "ESCALATE_SECRET": "test-secret", "ESCALATE_NOW": ""}
    seed_history(env["ESCALATE_DB_URL"])

    def invoke(*args: str, expect: int = 0):
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        db.close()
        assert result.exit_code == expect, result.output
        return result
    invoke.db_url = env["ESCALATE_DB_URL"]
    return invoke


def refs(run, *args: str) -> list[str]:
    return [t["ref"] for t in json.loads(run("tickets", "list", *args, "--json").stdout)]


def test_json_keeps_the_contract_and_marks_drills(run):
    listed = json.loads(run("tickets", "list", "--json").stdout)
    assert [t["ref"] for t in listed] == ["T-1", "T-2", "T-3", "T-4", "T-5", "T-6"]
    assert all(CONTRACT <= set(t) for t in listed)
    assert [t["ref"] for t in listed if t["drill"]] == ["T-6"]
    assert listed[1] == {**listed[1], "ref": "T-2", "status": "resolved", "severity": "urgent", "tier": 3,
                         "requester": "dana@other.example", "created_at": "2026-11-02T09:00:00+00:00",
                         "next_due_at": None, "message_count": 1}


def test_filters(run):
    assert refs(run, "--status", "open") == ["T-3", "T-4", "T-6"]
    assert refs(run, "--status", "open", "--no-drills") == ["T-3", "T-4"]
    assert refs(run, "--status", "active") == ["T-3", "T-4", "T-5", "T-6"]
    assert refs(run, "--status", "waiting", "--status", "resolved") == ["T-1", "T-2", "T-5"]
    assert refs(run, "--tier", "3") == ["T-2"]
    assert refs(run, "--tier", "1", "--tier", "3") == ["T-1", "T-2", "T-6"]
    assert refs(run, "--severity", "urgent") == ["T-1", "T-2"]
    assert refs(run, "--requester", "@customer.example") == ["T-1", "T-4", "T-5"]
    assert refs(run, "--requester", "DANA@") == ["T-2"]
    assert refs(run, "--text", "checkout") == ["T-1", "T-2"]  # in the subject, any case
    assert refs(run, "--text", "0x80") == ["T-4"]  # in a message of the ticket
    assert refs(run, "--status", "resolved", "--severity", "normal") == []


def test_overdue_counts_working_time_and_pauses(run):
    # T-4: a week unanswered. Not T-3 (answered within office hours after a weekend), not T-5
    # (its time waiting on the customer does not count), not the drill T-6 (drills have no targets).
    assert refs(run, "--overdue", "--now", NOW) == ["T-4"]
    # on Monday 2 Nov at 12:30 UTC T-4 has had 4.5 h of office time: past its 4 h first-response target
    assert refs(run, "--overdue", "--now", "2026-11-02T12:30:00+00:00") == ["T-4"]
    assert refs(run, "--overdue", "--now", "2026-11-02T11:30:00+00:00") == []


def test_sorting(run):
    assert refs(run, "--sort", "created", "--desc") == ["T-6", "T-5", "T-4", "T-3", "T-2", "T-1"]
    # the rules' order, most severe first (not alphabetical: "low" would come before "normal")
    assert refs(run, "--sort", "severity")[:2] == ["T-1", "T-2"]
    assert refs(run, "--sort", "tier", "--desc")[:2] == ["T-2", "T-1"]
    assert refs(run, "--sort", "requester")[:2] == ["T-1", "T-2"]  # carl@, dana@
    due = refs(run, "--sort", "due")
    assert due[:2] == ["T-3", "T-4"] and set(due[2:]) == {"T-1", "T-2", "T-5", "T-6"}  # no due time: last


def test_table_for_people(run):
    out = run("tickets", "list").stdout
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0] == "Ref Status Severity Tier Ladder Msgs Opened Next due Requester Subject"
    t2 = next(line for line in lines if line.startswith("T-2 "))
    assert t2.startswith("T-2 resolved urgent 3 acknowledged 1 2026-11-02 09:00 UTC - dana@")
    drill = next(line for line in lines if line.startswith("T-6"))
    assert drill.startswith("T-6 DRILL open normal 1 acknowledged 1 2026-11-03 10:00 UTC")
    assert "\x1b[" not in out
    limited = run("tickets", "list", "--limit", "2").stdout
    assert "Showing 2 of 6 tickets; use --limit 0 for all" in limited and "T-3" not in limited
    assert "No tickets match" in run("tickets", "list", "--tier", "9").stdout


def test_bad_filters_are_bad_usage_with_the_fix(run):
    out = run("tickets", "list", "--severity", "critical", expect=2).output
    assert "no severity critical" in out and "urgent, high, normal, low" in out
    assert "Invalid value for '--tier'" in run("tickets", "list", "--tier", "two", expect=2).output
    assert "Invalid value for '--sort'" in run("tickets", "list", "--sort", "colour", expect=2).output


def test_show_tells_the_story(run):
    out = run("tickets", "show", "T-2").stdout
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert lines[0] == "T-2 RE: Checkout is down"
    assert "Acknowledged 2026-11-02 10:30 UTC by alice@example.com" in lines
    assert "urgent-no-first-response 3 6 acknowledged 2026-11-02 09:15 UTC 2026-11-02 10:30 UTC by heidi@example.com" in lines
    assert any(line.startswith("9 next-tier 3 sent 2026-11-02 10:15 UTC") for line in lines)  # the notifications
    assert "2026-11-02 10:15 UTC escalate escalated-next-tier urgent-no-first-response tier=3, step=6" in lines
    assert "2026-11-02 10:30 UTC heidi@example.com acknowledged - via=mail" in lines
    conversation = run("tickets", "show", "T-4").stdout
    assert "customer frank@customer.example: Export fails" in conversation
    assert "The CSV export stops with error 0x80." in conversation
    assert "DRILL: a practice escalation, no customer is waiting" in run("tickets", "show", "t-6").stdout
    detail = json.loads(run("tickets", "show", "T-2", "--json").stdout)
    assert CONTRACT <= set(detail) and {"messages", "escalations", "events"} <= set(detail)
    assert [e["action"] for e in detail["events"]] == ["created", "escalated", "escalated-next-tier", "acknowledged"]
    assert "see `escalate tickets list`" in run("tickets", "show", "T-99", expect=2).output


def test_shell_completion(run, tmp_path: Path):
    script = CliRunner().invoke(main, [], prog_name="escalate", env={"_ESCALATE_COMPLETE": "bash_source"})
    assert script.exit_code == 0 and "_escalate_completion" in script.output and "complete " in script.output
    words = CliRunner().invoke(main, [], prog_name="escalate", env={
        "_ESCALATE_COMPLETE": "bash_complete", "COMP_WORDS": "escalate tickets list --sort se", "COMP_CWORD": "4"})
    assert words.output.split() == ["plain,severity"]
    commands = CliRunner().invoke(main, [], prog_name="escalate", env={
        "_ESCALATE_COMPLETE": "bash_complete", "COMP_WORDS": "escalate dr", "COMP_CWORD": "1"})
    assert commands.output.split() == ["plain,drill"]


def add_tickets(run, count: int) -> None:
    """`count` more open tickets beside the six of the history."""
    from datetime import datetime, timezone

    from escalate.store.models import Ticket

    db.connect(run.db_url)
    at = datetime(2026, 11, 5, 9, 0, tzinfo=timezone.utc)
    with db.write_transaction():
        for start in range(0, count, 500):
            Ticket.insert_many([{"ref": f"T-{n}", "subject": f"Storm report number {n}\nsecond line",
                                 "normalised_subject": f"storm report number {n}", "requester": f"c{n}@many.example",
                                 "status": "open", "severity": "normal", "created_at": at, "updated_at": at,
                                 "message_count": 1} for n in range(7 + start, 7 + min(count, start + 500))]).execute()
    db.close()


def test_a_long_listing_is_written_row_by_row_in_plain_columns_and_its_json_is_unchanged(run):
    add_tickets(run, 400)
    out = run("tickets", "list", "--limit", "0").stdout
    lines = out.splitlines()
    assert len(lines) == 2 + 406 and "Showing" not in out  # the headings, their rule and every ticket
    assert lines[0].split() == ["Ref", "Status", "Severity", "Tier", "Ladder", "Msgs", "Opened", "Next", "due",
                                "Requester", "Subject"]
    assert set(lines[1]) == {"─"}  # the look of the shorter, rich-laid-out table
    assert lines[-1].split() == ["T-406", "open", "normal", "-", "-", "1", "2026-11-05", "09:00", "UTC", "-",
                                 "c406@many.example", "Storm", "report", "number", "406", "second", "line"]
    assert lines[7].split()[:3] == ["T-6", "DRILL", "open"]
    starts = {line.index("c406@") if "c406@" in line else None for line in lines[-1:]}
    assert starts == {lines[0].index("Requester")}  # columns line up
    assert "Showing 200 of 406 tickets" in run("tickets", "list").stdout  # the default stays a rich table

    streamed = run("tickets", "list", "--limit", "0", "--json").stdout
    listed = json.loads(streamed)
    assert len(listed) == 406 and all(CONTRACT <= set(t) for t in listed)
    assert streamed == json.dumps(listed, indent=2, ensure_ascii=False) + "\n"  # the same text as written whole
    assert run("tickets", "list", "--tier", "9", "--json").stdout == "[]\n"
