"""`escalate import` keeps history as history: 500 messages over 60 days, stored at their own
dates and threaded (even when a reply comes before its parent in the file); conversations that
ended before the cut-off are closed and never evaluated, the rest open with their real ages; the
first `run --once` mails nothing about the closed ones."""

from __future__ import annotations

import json
import mailbox as stdlib_mailbox
import random
import re
from datetime import timedelta
from pathlib import Path

import pytest
from escalate.clock import iso, parse_time
from escalate.testing.loopback import SmtpSink

from tests.conftest import REPO, make_mail

IMPORTED_AT = parse_time("2026-11-30T10:00:00+00:00")  # a Monday
CONVERSATIONS, PER_CONVERSATION = 100, 5  # 500 messages
SPAN = timedelta(days=60)


def conversations() -> list[dict]:
    """Each conversation: a customer's mail and four replies, alternating agent and customer, six
    hours apart, starting evenly over the 60 days before the import."""
    found = []
    for n in range(CONVERSATIONS):
        start = IMPORTED_AT - SPAN + n * (SPAN - timedelta(days=2)) / CONVERSATIONS + timedelta(minutes=7 * n)
        customer = f"customer{n}@example.net"
        subject = f"Ref {n:03d}x{n * 7919 % 1000:03d} shipment{n} crate{n}"  # no two alike: no incidents
        ids, messages = [], []
        for step in range(PER_CONVERSATION):
            at = start + step * timedelta(hours=6)
            agent = step % 2 == 1
            message_id = f"c{n}.{step}@history.example"
            messages.append({"at": at, "raw": make_mail(
                sender="alice@example.com" if agent else customer, to=customer if agent else "support@example.com",
                subject=subject if step == 0 else f"Re: {subject}", body=f"message {step} of conversation {n}",
                message_id=message_id, in_reply_to=ids[-1] if ids else None, references=ids[:] or None,
                date=at.isoformat(), headers={"Cc": "support@example.com"} if agent else None)})
            ids.append(message_id)
        found.append({"subject": subject, "first": start, "last": messages[-1]["at"], "messages": messages})
    return found


def write_mbox(path: Path, history: list[dict]) -> None:
    """The messages, mostly in date order, but with a tenth of them moved: replies before parents."""
    messages = sorted((m for c in history for m in c["messages"]), key=lambda m: m["at"])
    shuffle = random.Random(18)
    for _ in range(len(messages) // 10):
        i, j = shuffle.randrange(len(messages)), shuffle.randrange(len(messages))
        messages[i], messages[j] = messages[j], messages[i]
    box = stdlib_mailbox.mbox(str(path))
    for message in messages:
        box.add(message["raw"])
    box.flush()
    box.close()


@pytest.fixture
def imported(cli, rules_file, tmp_path: Path) -> dict:
    rules_file((REPO / "rules.yaml").read_text(encoding="utf-8"))  # the shipped rules: the longest resolution is 1w
    history = conversations()
    write_mbox(tmp_path / "history.mbox", history)
    out = cli("import", str(tmp_path / "history.mbox"), "--json", "--now", iso(IMPORTED_AT)).output
    summary = json.loads(out[out.index("{"):])
    listed = {t["subject"]: t for t in json.loads(cli("tickets", "list", "--limit", "0", "--json").output)}
    return {"history": history, "summary": summary, "tickets": listed, "cutoff": IMPORTED_AT - timedelta(weeks=1)}


def test_history_keeps_its_dates_threads_and_closes_what_ended(imported, cli, tmp_path: Path):
    history, summary, tickets, cutoff = imported["history"], imported["summary"], imported["tickets"], imported["cutoff"]
    assert summary["messages"] == 500
    assert summary["outcomes"] == {"ticket": CONVERSATIONS, "reply": CONVERSATIONS * (PER_CONVERSATION - 1)}
    assert summary["open_since"] == iso(cutoff)
    assert len(tickets) == CONVERSATIONS
    ended = {c["subject"] for c in history if c["last"] < cutoff}
    assert 80 <= len(ended) < CONVERSATIONS  # most of the 60 days is older than a week
    for conversation in history:
        ticket = tickets[conversation["subject"]]
        assert ticket["created_at"] == iso(conversation["first"])  # the message's own Date, not the import time
        assert ticket["message_count"] == PER_CONVERSATION  # threaded, whatever the file's order
        assert (ticket["status"] == "closed") == (conversation["subject"] in ended)
        assert ticket["status"] in ("closed", "new", "open")
    assert sorted(summary["closed"]) == sorted(tickets[s]["ref"] for s in ended)
    assert sorted(summary["opened"]) == sorted(t["ref"] for s, t in tickets.items() if s not in ended)
    # the text output says what it opened and closed
    shown = cli("tickets", "show", tickets[next(iter(ended))]["ref"], "--json").output
    assert '"closed"' in shown and "history" in shown
    again = cli("import", str(tmp_path / "history.mbox"), "--now", iso(IMPORTED_AT)).output
    assert "imported 500 messages" in again and "500 duplicate" in again
    assert "opened 0 tickets" in again and "closed 0 tickets" in again


def test_first_run_mails_nothing_about_closed_conversations(imported, cli, smtp_sink: SmtpSink):
    closed = {t["ref"] for t in imported["tickets"].values() if t["status"] == "closed"}
    cli("run", "--once", "--now", iso(IMPORTED_AT))
    cli("run", "--once", "--now", iso(IMPORTED_AT + timedelta(hours=1)))
    mailed = {re.search(r"\[(T-\d+)\]", m.message["Subject"]).group(1) for m in smtp_sink.messages}
    assert mailed and not closed & mailed  # the open ones' clocks run; nothing about the closed ones
    after = {t["ref"]: t for t in json.loads(cli("tickets", "list", "--limit", "0", "--json").output)}
    # never evaluated: still closed, never escalated to a tier, nothing due
    assert all((after[ref]["status"], after[ref]["tier"], after[ref]["next_due_at"]) == ("closed", None, None)
               for ref in closed)


def test_first_run_mails_each_open_ticket_at_most_once(imported, cli, smtp_sink: SmtpSink):
    """At most one escalation mail (to a tier group: escalation, reminder or next tier) per open
    ticket on the first run; a breach alert to a lead is not a tier mail."""
    cli("run", "--once", "--now", iso(IMPORTED_AT))
    tier_mails = [m for m in smtp_sink.messages if m.message["X-Escalate-Kind"] in ("escalation", "reminder", "next-tier")]
    mailed = [re.search(r"\[(T-\d+)\]", m.message["Subject"]).group(1) for m in tier_mails]
    assert mailed and len(mailed) == len(set(mailed)), sorted(mailed)


def test_the_import_says_what_it_opened_and_closed(cli, tmp_path: Path):
    history = conversations()
    chosen = history[:2] + history[-3:]  # two long over, three recent
    write_mbox(tmp_path / "few.mbox", chosen)
    out = cli("import", str(tmp_path / "few.mbox"), "--now", iso(IMPORTED_AT),
              "--open-since", "2026-11-20").output
    assert "imported 25 messages" in out and "5 ticket" in out and "20 reply" in out
    assert "opened 3 tickets with mail since 2026-11-20 00:00 UTC: T-3, T-4, T-5" in out
    assert "closed 2 tickets whose last message is older (history: never evaluated): T-1, T-2" in out
    cli("import", str(tmp_path / "few.mbox"), "--open-since", "yesterday", expect=2)  # a clear error
