"""`escalate outbox list` for people: the one table, at most --limit rows (the newest; 200 by
default, where it used to print every row), --since and --status to narrow; --json lists all."""

from __future__ import annotations

import json

from tests.cli.test_report import run  # noqa: F401  (the fixture: the hand-checked history)


def ids(run, *args: str) -> list[int]:
    return [row["id"] for row in json.loads(run("outbox", "list", *args, "--json").stdout)]


def test_json_lists_every_mail_oldest_first_and_keeps_its_fields(run):
    listed = json.loads(run("outbox", "list", "--json").stdout)
    assert [row["id"] for row in listed] == list(range(1, 11))
    assert {"id", "ticket", "kind", "tier", "status", "subject", "created_at", "sent_at"} <= set(listed[0])


def test_limit_keeps_the_newest_and_says_what_was_left_out(run):
    assert ids(run, "--limit", "3") == [8, 9, 10]
    table = run("outbox", "list", "--limit", "3").stdout.splitlines()
    assert table[0].split()[:4] == ["#", "Ticket", "Kind", "Tier"] and set(table[1].strip()) == {"─"}
    assert [line.split()[0] for line in table[2:] if line.split()[0].isdigit()] == ["8", "9", "10"]
    assert table[-1] == "Showing 3 of 10 mails; use --limit 0 for all, or narrow with --since and --status."
    everything = run("outbox", "list", "--limit", "0").stdout
    assert "Showing" not in everything and "[T-1] Checkout is down" in everything


def test_since_narrows_to_mail_queued_from_then_on(run):
    # T-2's ladder ran 09:15–10:15 UTC on 2 Nov in steps of 10 minutes; the drill mailed on 3 Nov
    assert ids(run, "--since", "2026-11-02T10:00:00+00:00") == [8, 9, 10]
    assert ids(run, "--since", "2026-11-03") == [10]
    assert ids(run, "--since", "2026-11-03", "--status", "queued") == []
    assert "2026-11-03 10:00 UTC" in run("outbox", "list", "--since", "2026-11-03").stdout  # as everywhere
    out = run("outbox", "list", "--since", "soon", expect=2).output
    assert "--since" in out and "ISO-8601" in out
