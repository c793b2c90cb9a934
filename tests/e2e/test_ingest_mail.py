"""Real-world mail through real Dovecot: every hard-mail fixture is accounted for, machine mail
is recorded but never answered or escalated, our own mail and bounces of it never
open tickets, and threading holds against mangled subjects and strangers."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta
from pathlib import Path

from escalate.clock import parse_time
from escalate.testing.loopback import Dovecot, SmtpSink

from ..conftest import TEST_RULES
from .ingest_support import NOW, append_many, cycle, rows, scalar

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"
IMMEDIATE_RULES = TEST_RULES.replace("no_first_response_for: 15m", "no_first_response_for: 0m")


def at(minutes: float) -> str:
    return (parse_time(NOW) + timedelta(minutes=minutes)).isoformat()


def test_every_hard_mail_fixture_is_accounted_for(cli, env, dovecot: Dovecot, smtp_sink: SmtpSink):
    """On our fixtures: each becomes a ticket message, a machine-mail record or a
    quarantine record; no bounce, auto-reply or list mail opens a ticket; nothing is sent."""
    files = sorted(MAIL.glob("*.eml"))
    append_many(dovecot, [path.read_bytes() for path in files])
    result = cycle(cli)
    assert sum(result["ingested"].values()) == len(files)
    for path in files:
        digest = hashlib.sha256(re.sub(rb"\r?\n", b"\r\n", path.read_bytes())).hexdigest()  # APPEND sends CRLF
        stored = rows(env, "SELECT kind, ticket_id FROM message WHERE sha256 = ?", digest)
        held = rows(env, "SELECT reason FROM quarantine WHERE sha256 = ?", digest)
        assert len(stored) + len(held) == 1, path.name
        if path.name.startswith("poison"):
            assert held
        elif path.name.startswith(("bounce", "auto_reply", "list", "bulk", "junk", "newsletter")):
            [(kind, ticket)] = stored
            assert kind in ("bounce", "auto-reply", "auto-generated", "list", "bulk") and ticket is None, path.name
        else:
            [(kind, ticket)] = stored
            assert kind == "customer" and ticket is not None, path.name
    assert scalar(env, "SELECT count(*) FROM outbox") == 0
    cycle(cli, at(60 * 24))  # a day later: tickets escalate, machine mail still does not
    machine_tickets = rows(env, "SELECT count(*) FROM ticket t JOIN message m ON m.ticket_id = t.id "
                                "WHERE m.kind NOT IN ('customer', 'agent', 'other')")
    assert machine_tickets == [(0,)]
    mailer_daemons = [m for m in smtp_sink.messages if any("daemon" in r.lower() or "postmaster" in r.lower() for r in m.rcpt_tos)]
    assert mailer_daemons == []


def test_own_notification_coming_back_opens_no_ticket(cli, env, rules_file, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    """Own mail comes back: the tier group includes the support address; our notification lands in INBOX."""
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout down", body="Outage!", message_id="c1@x.example"))
    cycle(cli)
    cycle(cli, at(1))
    sent = smtp_sink.wait_for(1)
    outbox_before = scalar(env, "SELECT count(*) FROM outbox")
    append_many(dovecot, [m.data for m in sent])
    result = cycle(cli, at(2))
    assert result["tickets_created"] == [] and result["ingested"] == {"own": len(sent)}
    assert scalar(env, "SELECT count(*) FROM ticket") == 1
    assert scalar(env, "SELECT count(*) FROM event WHERE action = 'own-mail-returned'") == len(sent)
    assert scalar(env, "SELECT count(*) FROM outbox") == outbox_before


def test_rfc3834_autoresponder_is_recorded_and_never_answered(cli, env, rules_file, dovecot: Dovecot,
                                                               smtp_sink: SmtpSink, mail):
    """An RFC 3834 responder answering everything with Auto-Submitted: auto-replied, for 2 simulated hours."""
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout down", body="Outage!", message_id="c1@x.example"))
    cycle(cli)
    answered: set[str] = set()
    for minute in range(0, 121, 10):
        cycle(cli, at(minute))
        for sent in smtp_sink.messages:
            mid = sent.message["Message-ID"].strip("<>")
            if mid in answered:
                continue
            answered.add(mid)
            dovecot.append(mail(sender=f"{sent.rcpt_tos[0]}", subject="Auto: " + sent.message["Subject"],
                                body="I am away.", in_reply_to=mid,
                                headers={"Auto-Submitted": "auto-replied"}))
    cycle(cli, at(121))
    replies = rows(env, "SELECT message_id, ticket_id FROM message WHERE kind = 'auto-reply'")
    assert len(replies) == len(answered) >= 2
    assert all(ticket == 1 for _, ticket in replies)  # recorded on the ticket
    assert scalar(env, "SELECT count(*) FROM ticket") == 1
    # nothing was ever sent in answer to an auto-reply: only the escalation policy's own mail
    auto_ids = {f"<{mid}>" for mid, _ in replies}
    assert all(m.message["In-Reply-To"] not in auto_ids for m in smtp_sink.messages)
    assert scalar(env, "SELECT count(*) FROM outbox WHERE kind = 'confirmation'") == 0  # no command ran
    events = [a for (a,) in rows(env, "SELECT action FROM event")]
    assert "acknowledged" not in events and "resolved" not in events


def test_list_and_bulk_mail_never_open_an_escalating_ticket(cli, env, rules_file, dovecot: Dovecot, smtp_sink: SmtpSink):
    """List and bulk mail: List-Id, Precedence: bulk, GTUBE with Precedence: junk."""
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    append_many(dovecot, [(MAIL / name).read_bytes() for name in
                          ("list_id.eml", "bulk_precedence.eml", "junk_gtube.eml", "newsletter_unsubscribe.eml")])
    assert cycle(cli)["ingested"] == {"machine": 4}
    cycle(cli, at(600))
    assert scalar(env, "SELECT count(*) FROM ticket") == 0 and smtp_sink.messages == []


def _dsn(to: str, original_id: str, recipient: str) -> bytes:
    template = (MAIL / "bounce_postfix_dsn.eml").read_text()
    return (template.replace("support+bounce-7.0.abcdefghijklmnop@example.com", to)
            .replace("esc.0123456789abcdef.abcdefghijklmnopqrstuvwxyz@example.com", original_id)
            .replace("gone@tier.example", recipient)
            .replace("<20261102080001.1A2B3C@mx.example.com>", f"<dsn-{hashlib.md5(to.encode()).hexdigest()}@mx.example.com>")
            .encode())


def test_bounce_of_a_notification_is_attributed_to_it_and_opens_nothing(cli, env, rules_file, dovecot: Dovecot,
                                                                          smtp_sink: SmtpSink, mail):
    """A bounce of ours: a Postfix-style DSN to our VERP return path for one recipient; and one without VERP
    that only names our Message-ID in the returned headers."""
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout down", body="Outage!", message_id="c1@x.example"))
    cycle(cli)
    cycle(cli, at(1))
    [(outbox_id, message_id, return_path, recipient)] = rows(
        env, "SELECT o.id, o.message_id, d.mail_from, d.recipient FROM outbox o JOIN delivery d ON d.outbox_id = o.id "
             "WHERE o.kind = 'escalation'")
    sent_before = len(smtp_sink.messages)
    dovecot.append(_dsn(return_path, message_id, recipient))
    result = cycle(cli, at(2))
    assert result["ingested"] == {"bounce": 1} and result["tickets_created"] == []
    assert rows(env, "SELECT status FROM delivery WHERE outbox_id = ?", outbox_id) == [("bounced",)]
    assert rows(env, "SELECT bounce_outbox_id, bounce_recipient, ticket_id FROM message WHERE kind = 'bounce'") == [
        (outbox_id, recipient, None)]
    [(detail,)] = rows(env, "SELECT detail FROM event WHERE action = 'notification-bounced'")
    assert json.loads(detail)["recipient"] == recipient
    # a forged VERP address (wrong MAC) and no known Message-ID: recorded as a bounce, attributed to nothing
    dovecot.append(_dsn("support+bounce-1.0.aaaaaaaaaaaaaaaa@example.com", "unknown@elsewhere", "x@y.example"))
    assert cycle(cli, at(3))["ingested"] == {"bounce": 1}
    assert scalar(env, "SELECT count(*) FROM event WHERE action = 'notification-bounced'") == 1
    # without VERP, by the original Message-ID
    dovecot.append(_dsn("support@example.com", message_id, recipient))
    assert cycle(cli, at(4))["ingested"] == {"bounce": 1}
    assert scalar(env, "SELECT count(*) FROM message WHERE bounce_outbox_id = ?", outbox_id) == 2
    assert scalar(env, "SELECT count(*) FROM ticket") == 1
    replies_to_daemons = [m for m in smtp_sink.messages[sent_before:] if any("daemon" in r.lower() for r in m.rcpt_tos)]
    assert replies_to_daemons == []


# --- threading ------------------------------------------------------------------------------------

def test_threading_order_and_mangled_subjects(cli, env, dovecot: Dovecot, mail):
    """Threading and mangled subjects: tag in any position behind any prefix (also encoded),
    In-Reply-To, References, Outlook's Thread-Index-only replies by the fallback; two tags → the
    earliest that exists, audited."""
    originals = [mail(sender=f"c{n}@customer.example", subject=f"Problem number {n}", body="help",
                      message_id=f"o{n}@customer.example") for n in range(4)]
    append_many(dovecot, originals)
    assert cycle(cli)["tickets_created"] == ["T-1", "T-2", "T-3", "T-4"]
    labelled = [  # (mail, expected ticket)
        (mail(sender="c0@customer.example", subject="AW: RE: Fwd: [EXT] [t-1] Problem", body="a"), "T-1"),
        (mail(sender="c0@customer.example", subject="=?utf-8?q?SV=3A_=5BT-1=5D_Probl=C3=A8me?=", body="b"), "T-1"),
        (mail(sender="c1@customer.example", subject="Still broken [T-2]", body="c"), "T-2"),
        (mail(sender="c1@customer.example", subject="unrelated words", body="d", in_reply_to="o1@customer.example"), "T-2"),
        (mail(sender="c2@customer.example", subject="other words", body="e",
              references=["o2@customer.example", "unknown@x"]), "T-3"),
        (mail(sender="c3@customer.example", subject="RE: Problem number 3", body="f",
              headers={"Thread-Index": "AdnXyZAbCdEfGhIjKlMnOpQrStUvWx==", "Thread-Topic": "Problem number 3"}), "T-4"),
        (mail(sender="c2@customer.example", subject="Re: [T-99] [T-3] [T-2] two tags", body="g"), "T-3"),
    ]
    append_many(dovecot, [raw for raw, _ in labelled])
    result = cycle(cli)
    assert result["tickets_created"] == [] and result["ingested"] == {"reply": len(labelled)}
    got = rows(env, "SELECT t.ref FROM message m JOIN ticket t ON t.id = m.ticket_id ORDER BY m.id")[4:]
    assert [ref for (ref,) in got] == [ref for _, ref in labelled]
    [(detail,)] = rows(env, "SELECT detail FROM event WHERE action = 'several-references'")
    assert json.loads(detail)["used"] == "T-3"


def test_a_stranger_quoting_a_reference_cannot_act_and_is_not_told(cli, env, rules_file, dovecot: Dovecot,
                                                                     smtp_sink: SmtpSink, mail):
    """Tag spoofing: an unknown sender quoting another customer's [T-1] with commands in it."""
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout down", body="Outage!", message_id="c1@x.example"))
    cycle(cli)
    dovecot.append(mail(sender="mallory@evil.example", subject="Re: [T-1] Checkout down", body="#resolve\n#ack",
                        message_id="m1@evil.example"))
    cycle(cli, at(1))
    cycle(cli, at(30))
    [(kind, status)] = rows(env, "SELECT m.kind, t.status FROM message m JOIN ticket t ON t.id = m.ticket_id "
                                 "WHERE m.message_id = 'm1@evil.example'")
    assert kind == "other" and status == "new"
    actions = [a for (a,) in rows(env, "SELECT action FROM event")]
    assert "sender-not-on-ticket" in actions and "command-refused" in actions
    assert "resolved" not in actions and "acknowledged" not in actions
    assert all("mallory@evil.example" not in m.rcpt_tos for m in smtp_sink.messages)


def test_a_customer_reply_reopens_a_resolved_ticket(cli, env, dovecot: Dovecot, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Login broken", body="x", message_id="c1@x.example"))
    cycle(cli)
    cli("tickets", "resolve", "T-1", "--as", "alice@example.com", "--now", at(5))
    dovecot.append(mail(sender="carl@customer.example", subject="Re: [T-1] Login broken", body="Broken again.",
                        in_reply_to="c1@x.example"))
    cycle(cli, at(60))
    assert json.loads(cli("tickets", "show", "T-1", "--json").output)["status"] == "open"
    assert scalar(env, "SELECT count(*) FROM ticket") == 1
