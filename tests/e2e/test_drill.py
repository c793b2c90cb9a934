"""A drill walked end to end on real servers: `escalate drill` queues the tier's escalation in the
outbox, `run --once` sends it to the aiosmtpd sink, tier members answer #ack by mail through
Dovecot and the normal reply path, and `drill report` shows how fast each tier acknowledged.
Every mail is marked DRILL; the rules never escalate a drill; the report leaves it out."""

from __future__ import annotations

import json
from datetime import timedelta

from escalate.clock import parse_time
from escalate.testing.loopback import Dovecot, SmtpSink

T0 = "2026-11-02T09:00:00+00:00"


def at(minutes: int) -> str:
    return (parse_time(T0) + timedelta(minutes=minutes)).isoformat()


def cycle(cli, minutes: int) -> dict:
    return json.loads(cli("run", "--once", "--now", at(minutes), "--json").stdout)


def text_and_html(message) -> tuple[str, str]:
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def reply(dovecot: Dovecot, mail, sender: str, notification, body: str) -> None:
    message_id = notification.message["Message-ID"].strip("<>")
    dovecot.append(mail(sender=sender, subject="Re: " + notification.message["Subject"], body=body,
                        in_reply_to=message_id, references=[message_id]))


def test_drill_walks_the_real_path_and_reports_each_tiers_time_to_ack(cli, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    started = cli("drill", "--tier", "1", "--tier", "2", "--now", T0).stdout
    assert "Drill T-1 for tier 1 (Frontline): escalation mail queued to tier1@example.com" in started
    assert "Drill T-2 for tier 2 (Specialists): escalation mail queued to tier2@example.com" in started
    assert "escalate drill report" in started
    assert smtp_sink.messages == []  # queued in the outbox, sent by the daemon's send stage

    assert cycle(cli, 1)["sent"] == 2
    sent = {m.rcpt_tos[0]: m for m in smtp_sink.wait_for(2)}
    tier1, tier2 = sent["tier1@example.com"], sent["tier2@example.com"]
    for notification, ref in ((tier1, "T-1"), (tier2, "T-2")):
        subject = notification.message["Subject"]
        assert subject.startswith(f"[{ref}] Escalation to") and "DRILL" in subject
        text, html = text_and_html(notification.message)
        assert "DRILL" in text and "DRILL" in html and "no customer is waiting" in text
        assert "#ack" in text

    # the rules never act on a drill: no reminder, no next tier, however long nobody answers
    cycle(cli, 3)
    assert len(smtp_sink.messages) == 2

    # tier 1 acknowledges after 4 minutes; someone off its roster (carol, of tier 2) is refused like on a
    # real ticket
    reply(dovecot, mail, "carol@example.com", tier1, "#ack\n")
    reply(dovecot, mail, "Alice <alice@example.com>", tier1, "#ack\nDrill received.\n")
    cycle(cli, 5)
    confirmation = next(m for m in smtp_sink.wait_for(3) if "alice@example.com" in m.message["Subject"])
    assert confirmation.rcpt_tos == ["tier1@example.com"] and "DRILL" in confirmation.message["Subject"]
    assert "DRILL" in text_and_html(confirmation.message)[0]
    # tier 2 takes 12 minutes
    reply(dovecot, mail, "carol@example.com", tier2, "#ack\n")
    cycle(cli, 13)
    # acknowledged drills are open tickets, but never due: nothing for the engine, nothing overdue
    listed = json.loads(cli("tickets", "list", "--json").stdout)
    assert [(t["status"], t["next_due_at"]) for t in listed] == [("open", None), ("open", None)]

    results = json.loads(cli("drill", "report", "--json").stdout)
    by_ref = {d["ref"]: d for d in results["drills"]}
    assert by_ref["T-1"]["acknowledged_by"] == "alice@example.com" and by_ref["T-1"]["seconds_to_ack"] == 240
    assert by_ref["T-1"]["sent_at"] == at(1) and by_ref["T-1"]["acknowledged_at"] == at(5)
    assert by_ref["T-2"]["acknowledged_by"] == "carol@example.com" and by_ref["T-2"]["seconds_to_ack"] == 720
    assert [(t["tier"], t["drills"], t["acknowledged"], t["median_seconds"]) for t in results["tiers"]] == [
        (1, 1, 1, 240), (2, 1, 1, 720)]
    people = [" ".join(line.split()) for line in cli("drill", "report").stdout.splitlines()]
    assert "1 Frontline 1 1 4m 4m 2026-11-02 09:00 UTC" in people
    assert "2 Specialists 1 1 12m 12m 2026-11-02 09:00 UTC" in people
    assert any(line.startswith("T-1 1 2026-11-02 09:00 UTC 2026-11-02 09:01 UTC 2026-11-02 09:05 UTC alice@example.com 4m open")
               for line in people)

    detail = json.loads(cli("tickets", "show", "T-1", "--json").stdout)
    actions = [e["action"] for e in detail["events"]]
    assert actions[:3] == ["created", "drill-started", "escalated"] and "command-refused" in actions
    assert detail["drill"] is True and detail["escalations"][0]["rule"] == "drill"

    # a drill is never mistaken for a real ticket: marked in lists, out of the report unless asked
    listed = cli("tickets", "list").stdout
    assert "T-1 DRILL" in listed and "T-2 DRILL" in listed
    assert json.loads(cli("report", "--since", "2026-11-01", "--json", "--now", at(60)).stdout)["totals"]["tickets"] == 0
    with_drills = json.loads(cli("report", "--since", "2026-11-01", "--drills", "--json", "--now", at(60)).stdout)
    assert with_drills["totals"]["tickets"] == 2 and with_drills["totals"]["acknowledged"] == 2

    # #resolve closes the drill, again by mail, and tells the tier it is over
    reply(dovecot, mail, "alice@example.com", tier1, "#resolve drill done\n")
    cycle(cli, 20)
    assert json.loads(cli("tickets", "show", "T-1", "--json").stdout)["status"] == "resolved"
    # every mail about the drill says so in subject and body (the refusal to carol names no ticket
    # at all, by design: its sender may be a stranger)
    about_drills = [m for m in smtp_sink.messages if m.message["X-Escalate-Ticket"]]
    assert [m.message["X-Escalate-Kind"] for m in about_drills] == [
        "escalation", "escalation", "confirmation", "confirmation", "resolution"]  # 2 × #ack, then #resolve
    for m in about_drills:
        text, html = text_and_html(m.message)
        assert "DRILL" in str(m.message["Subject"]) and "DRILL" in text and "DRILL" in html, m.message["Subject"]
    assert [m.message["X-Escalate-Kind"] for m in smtp_sink.messages if not m.message["X-Escalate-Ticket"]] == ["refusal"]


def test_drill_needs_a_tier_that_exists(cli):
    out = cli("drill", expect=2).output
    assert "escalate drill --tier 1" in out and "escalate drill report" in out
    out = cli("drill", "--tier", "1", "--tier", "7", expect=2).output
    assert "there is no tier 7" in out and "the tiers are 1, 2" in out
    assert json.loads(cli("tickets", "list", "--json").stdout) == []  # tier 1's drill did not start either
    assert "No drills yet. Start one with `escalate drill --tier 1`." in cli("drill", "report").stdout
    assert json.loads(cli("drill", "report", "--json").stdout) == {"tiers": [], "drills": []}
