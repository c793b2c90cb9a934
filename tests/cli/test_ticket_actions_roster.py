"""`escalate tickets ack/note/… --as ADDRESS` asks the roster a mail reply would be asked: someone
a reply would be refused for is refused with one line and exit 2, and nothing changes; `--force`
acts all the same and the audit trail records the override, who forced it and why."""

from __future__ import annotations

import getpass
import json

from tests.cli.test_report import run  # noqa: F401  (the fixture: the hand-checked history, the example rules)


def events(run, ref: str) -> list[dict]:
    return json.loads(run("tickets", "show", ref, "--json").stdout)["events"]


def test_a_stranger_is_refused_in_one_line_and_nothing_changes(run):
    before = events(run, "T-3")
    refused = run("tickets", "ack", "T-3", "--as", "mallory@evil.example", expect=2)
    [line] = refused.output.splitlines()
    assert "mallory@evil.example is not on the roster of" in line and "--force" in line
    assert events(run, "T-3") == before
    assert json.loads(run("tickets", "show", "T-3", "--json").stdout)["acknowledged_at"] is None


def test_force_acknowledges_and_audits_the_override(run):
    done = json.loads(run("tickets", "ack", "T-3", "--as", "mallory@evil.example", "--force", "--json").stdout)
    assert done == {"ref": "T-3", "command": "ack", "done": done["done"], "actor": "mallory@evil.example",
                    "status": done["status"], "override": {"by": f"cli:{getpass.getuser()}",
                                                           "reason": done["override"]["reason"]}}
    assert "not on the roster" in done["override"]["reason"]
    shown = json.loads(run("tickets", "show", "T-3", "--json").stdout)
    assert shown["acknowledged_at"] is not None
    override, acknowledged = [e for e in shown["events"] if e["action"] in ("admin-override", "acknowledged")]
    assert override["actor"] == f"cli:{getpass.getuser()}"
    assert override["detail"]["acting_as"] == "mallory@evil.example" and override["detail"]["command"] == "ack"
    assert acknowledged["actor"] == "mallory@evil.example" and acknowledged["detail"]["via"] == "cli"
    assert "admin override" in run("tickets", "note", "T-3", "checked", "--as", "mallory@evil.example",
                                   "--force").stdout


def test_a_roster_member_acts_as_by_mail(run):
    said = run("tickets", "ack", "T-3", "--as", "alice@example.com").stdout
    assert said.startswith("T-3 ") and "by alice@example.com" in said and "override" not in said
    assert not [e for e in events(run, "T-3") if e["action"] == "admin-override"]


def test_the_roster_is_that_of_the_tiers_the_ticket_was_escalated_to(run):
    # T-6 was mailed to tier 1 only: a tier-3 member's reply to it would be refused, and so is the CLI
    out = run("tickets", "note", "T-6", "looked", "--as", "heidi@example.com", expect=2).output
    assert "heidi@example.com is not on the roster of Frontline (tier 1)" in out
    run("tickets", "note", "T-6", "looked", "--as", "bob@example.com")


def test_without_as_the_admin_acts_as_themselves(run):
    said = run("tickets", "note", "T-4", "called the customer").stdout
    assert f"by cli:{getpass.getuser()}" in said
