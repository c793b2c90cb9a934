"""The whole loop on real servers: customer mail in Dovecot → ticket → time moves with --now →
escalation mail at the aiosmtpd sink → a tier member's reply acts on the ticket."""

from __future__ import annotations

import json

import pytest
from escalate.testing.loopback import Dovecot, SmtpSink

# the whole loop on both databases escalate supports
pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

T0 = "2026-11-02T09:00:00+00:00"


def at(minutes: int) -> str:
    from datetime import timedelta

    from escalate.clock import parse_time
    return (parse_time(T0) + timedelta(minutes=minutes)).isoformat()


def tickets(cli) -> dict[str, dict]:
    return {t["ref"]: t for t in json.loads(cli("tickets", "list", "--json").output)}


def show(cli, ref: str) -> dict:
    return json.loads(cli("tickets", "show", ref, "--json").output)


def cycle(cli, minutes: int) -> dict:
    return json.loads(cli("run", "--once", "--now", at(minutes), "--json").output)


def test_customer_mail_escalates_until_a_roster_member_acknowledges(cli, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    dovecot.append(mail(sender="Carl Customer <carl@customer.example>", subject="Checkout is down for everyone",
                        body="Since 08:55 no order goes through. Error 502 at payment.", message_id="c1@customer.example"))
    dovecot.append(mail(sender="dana@other.example", subject="How do I export invoices?",
                        body="Where is the export button?", message_id="d1@other.example"))

    first = cycle(cli, 0)
    assert first["tickets_created"] == ["T-1", "T-2"]
    listed = tickets(cli)
    assert listed["T-1"]["status"] == "new" and listed["T-1"]["severity"] == "urgent"
    assert listed["T-2"]["severity"] == "normal"
    assert listed["T-1"]["requester"] == "carl@customer.example"
    assert listed["T-1"]["next_due_at"] == at(15)  # the first-response clock
    assert smtp_sink.messages == []

    # a second poll stores nothing new
    again = cycle(cli, 5)
    assert again["ingested"] == {} and again["tickets_created"] == []
    assert tickets(cli)["T-1"]["message_count"] == 1

    # 16 minutes without a first response: tier 1 is told
    cycle(cli, 16)
    [escalation] = smtp_sink.wait_for(1)
    assert escalation.rcpt_tos == ["tier1@example.com"]
    assert escalation.mail_from.startswith("support+bounce-") and escalation.mail_from.endswith("@example.com")  # VERP
    headers = escalation.message
    assert headers["To"] == "tier1@example.com"
    assert "[T-1]" in headers["Subject"] and "Checkout is down for everyone" in headers["Subject"]
    assert headers["Message-ID"].startswith("<esc.") and headers["Message-ID"].endswith("@example.com>")
    assert headers["In-Reply-To"] == "<c1@customer.example>"
    assert "<c1@customer.example>" in headers["References"]
    assert headers["Auto-Submitted"] == "auto-generated"
    text = escalation.message.get_body(("plain",)).get_content()
    html = escalation.message.get_body(("html",)).get_content()
    assert "Error 502 at payment" in text and "Error 502 at payment" in html
    assert "#ack" in text and "Frontline" in text
    assert "urgent-no-first-response" in text
    assert tickets(cli)["T-1"]["tier"] == 1

    # not yet time for the reminder: nothing sent
    cycle(cli, 20)
    assert len(smtp_sink.messages) == 1
    # the reminder at 09:25
    cycle(cli, 26)
    reminder = smtp_sink.wait_for(2)[1]
    assert "Reminder" in reminder.message["Subject"]
    assert reminder.message["Message-ID"] != escalation.message["Message-ID"]

    # someone not on the roster answers the notification with #ack: recorded, refused, no change
    dovecot.append(mail(sender="mallory@elsewhere.example", subject="Re: " + reminder.message["Subject"],
                        body="#ack\n", in_reply_to=reminder.message["Message-ID"].strip("<>")))
    cycle(cli, 27)
    detail = show(cli, "T-1")
    assert detail["status"] == "new" and detail["acknowledged_at"] is None
    assert detail["message_count"] == 2
    refused = [e for e in detail["events"] if e["action"] == "command-refused"]
    assert len(refused) == 1 and "not on the roster" in refused[0]["detail"]["reason"]
    # mallory is on no roster: not told (a refusal to a stranger, whose From may be forged, is backscatter)
    assert refused[0]["detail"]["not_told"] == "not on any tier's roster"
    assert len(smtp_sink.messages) == 2

    # alice, on the tier 1 roster, acknowledges by replying; the old quoted text is ignored
    dovecot.append(mail(sender="Alice <alice@example.com>", subject="Re: " + reminder.message["Subject"],
                        body="#ack\nI'm on it.\n\nOn Mon, 2 Nov 2026 at 09:25, Support wrote:\n> #resolve\n",
                        in_reply_to=reminder.message["Message-ID"].strip("<>"),
                        references=["c1@customer.example", reminder.message["Message-ID"].strip("<>")]))
    cycle(cli, 30)
    detail = show(cli, "T-1")
    assert detail["status"] == "open"
    assert detail["acknowledged_by"] == "alice@example.com"
    assert detail["escalations"][0]["state"] == "acknowledged"
    confirmation = smtp_sink.wait_for(3)[2]
    assert "alice@example.com" in confirmation.message["Subject"] and confirmation.rcpt_tos == ["tier1@example.com"]

    # no further repeats, however much time passes (within the resolution target)
    for minutes in (40, 60, 120):
        cycle(cli, minutes)
    assert len(smtp_sink.messages) == 3

    # #resolve from a roster member resolves
    dovecot.append(mail(sender="bob@example.com", subject="Re: " + escalation.message["Subject"],
                        body="#resolve payment gateway restarted\n",
                        in_reply_to=escalation.message["Message-ID"].strip("<>")))
    cycle(cli, 130)
    detail = show(cli, "T-1")
    assert detail["status"] == "resolved"
    resolved = [e for e in detail["events"] if e["action"] == "resolved"]
    assert resolved[0]["actor"] == "bob@example.com" and resolved[0]["detail"]["note"] == "payment gateway restarted"


def test_unacknowledged_escalation_climbs_to_the_next_tier(cli, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Total outage", body="Nothing works."))
    cycle(cli, 0)
    for minutes in (16, 26, 36):
        cycle(cli, minutes)
    sent = smtp_sink.wait_for(3)
    assert [m.rcpt_tos for m in sent] == [["tier1@example.com"]] * 3
    cycle(cli, 46)  # third unacknowledged repeat: next_tier_after 2 → tier 2
    fourth = smtp_sink.wait_for(4)[3]
    assert fourth.rcpt_tos == ["tier2@example.com"]
    assert "Specialists" in fourth.message["Subject"]
    assert tickets(cli)["T-1"]["tier"] == 2
    # a tier-1 member cannot acknowledge through the tier-2 notification
    dovecot.append(mail(sender="alice@example.com", subject="Re: x", body="#ack",
                        in_reply_to=fourth.message["Message-ID"].strip("<>")))
    cycle(cli, 47)
    assert tickets(cli)["T-1"]["status"] == "new"
    # carol (tier 2) can
    dovecot.append(mail(sender="carol@example.com", subject="Re: x", body="#ack",
                        in_reply_to=fourth.message["Message-ID"].strip("<>")))
    cycle(cli, 48)
    assert tickets(cli)["T-1"]["status"] == "open"


def test_replies_thread_by_subject_reference_and_by_headers(cli, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Invoice wrong", body="Amount is off.",
                        message_id="inv1@customer.example"))
    dovecot.append(mail(sender="dana@other.example", subject="Password reset", body="No mail arrives.",
                        message_id="pw1@other.example"))
    cycle(cli, 0)
    # reference in the subject, behind client prefixes, no threading headers
    dovecot.append(mail(sender="carl@customer.example", subject="AW: RE: [T-1] Invoice wrong", body="Any news?"))
    # threading headers only, with a subject the client rewrote
    dovecot.append(mail(sender="dana@other.example", subject="still broken", body="Still nothing.",
                        in_reply_to="pw1@other.example", references=["pw1@other.example"]))
    # a new conversation
    dovecot.append(mail(sender="erin@third.example", subject="Feature request", body="Dark mode please."))
    result = cycle(cli, 5)
    assert result["ingested"] == {"reply": 2, "ticket": 1}
    listed = tickets(cli)
    assert set(listed) == {"T-1", "T-2", "T-3"}
    assert listed["T-1"]["message_count"] == 2 and listed["T-2"]["message_count"] == 2
    assert listed["T-3"]["subject"] == "Feature request"


def test_customer_reply_reopens_a_resolved_ticket(cli, dovecot: Dovecot, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Login fails", body="403 on login."))
    cycle(cli, 0)
    cli("tickets", "resolve", "T-1", "--as", "alice@example.com", "--note", "cleared the lockout", "--now", at(10))
    assert tickets(cli)["T-1"]["status"] == "resolved"
    dovecot.append(mail(sender="carl@customer.example", subject="Re: [T-1] Login fails", body="It happens again."))
    cycle(cli, 20)
    detail = show(cli, "T-1")
    assert detail["status"] == "open"
    assert [e["action"] for e in detail["events"]].count("reopened") == 1
