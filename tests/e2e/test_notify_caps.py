"""Loop protection on a real database and a real aiosmtpd sink (docs/reliability.md,
"Machine mail and loops").

Customer acknowledgements, mail to outside addresses and mail per ticket are capped with Zammad's
defaults (tighter for acknowledgements); capped mail is recorded as "suppressed" with the reason,
never silently dropped; a dead address gets one attempt a day; machine mail is never answered.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone

import pytest
from escalate.config import parse_server_url
from escalate.engine import tick as engine
from escalate.outbound import notify, outbox, ratelimit
from escalate.outbound.templates import Renderer
from escalate.rules.loader import load_ruleset
from escalate.store import db
from escalate.store.models import Delivery, Event, Message, Outbox, Ticket
from escalate.tickets import lifecycle as tickets

from tests.conftest import make_mail

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
SECRET = b"caps-test-secret-0123456789abcdef"


class World:
    def __init__(self, tmp_path, rules_file, sink):
        db.connect(f"sqlite:///{tmp_path / 'caps.db'}")
        self.renderer = Renderer()
        self.ruleset = load_ruleset(rules_file(), template_names=self.renderer.names())
        self.sink = sink
        self.url = parse_server_url("ESCALATE_SMTP_URL", sink.url, ("smtp",))
        self.kw = {"ruleset": self.ruleset, "renderer": self.renderer, "secret": SECRET}

    def customer_mail(self, sender: str, subject: str, at: datetime, **headers: str) -> tuple[Ticket, Message]:
        """A new ticket from `sender`, with the stored message an acknowledgement answers."""
        raw = make_mail(sender=sender, subject=subject, body="Hello", headers=headers)
        with db.write_transaction():
            ticket = tickets.open_ticket(subject=subject, normalised_subject=subject.lower(), requester=sender,
                                         requester_name="", severity="normal", reference_prefix="T", now=at,
                                         reason="test")
            digest = hashlib.sha256(raw).hexdigest()
            message = Message.create(ticket=ticket, dedupe_key=f"sha256:{digest}", sha256=digest, kind="customer",
                                     from_addr=sender, subject=subject, received_at=at, raw=raw)
        return ticket, message

    def acknowledge(self, ticket: Ticket, message: Message, at: datetime) -> Outbox | None:
        with db.write_transaction():
            return notify.queue_acknowledgement(ticket=ticket, message=message, now=at, **self.kw)

    def send(self, at: datetime) -> outbox.SendResult:
        return outbox.send_due(self.url, at, on_failed=notify.lead_notifier(self.ruleset, self.renderer, SECRET))


@pytest.fixture
def world(tmp_path, rules_file, smtp_sink) -> World:
    return World(tmp_path, rules_file, smtp_sink)


def delivered_to(sink, address: str) -> int:
    return sum(address in m.rcpt_tos for m in sink.messages)


def test_hostile_autoresponder_gets_at_most_three_acks_an_hour_and_ten_a_day(world):
    # it strips Auto-Submitted/Precedence, changes subject and Message-ID: every mail is a new ticket
    bot = "bot@autoresponder.example"
    sent_at = []
    for minute in range(0, 24 * 60, 5):
        at = T0 + timedelta(minutes=minute)
        ticket, message = world.customer_mail(bot, f"Re: Auto: your request #{minute}", at)
        row = world.acknowledge(ticket, message, at)
        if row is not None and row.status == "queued":
            sent_at.append(at)
        world.send(at)
    assert delivered_to(world.sink, bot) == len(sent_at) == 10  # ≤ 10 in 24 h
    for start in sent_at:
        assert sum(start <= t < start + timedelta(hours=1) for t in sent_at) <= 3  # ≤ 3 in any hour
    suppressed = Outbox.select().where((Outbox.kind == "acknowledgement") & (Outbox.status == "suppressed"))
    assert suppressed.count() == 24 * 12 - 10  # recorded, with the reason, not dropped
    assert "loop cap" in suppressed.first().last_error
    # the loop is visible in the audit log within the first hour
    first_alarm = Event.select().where(Event.action == "notification-suppressed").order_by(Event.at).first()
    assert first_alarm.at < T0 + timedelta(hours=1) and bot in first_alarm.detail["reasons"]


def test_one_acknowledgement_per_sender_per_ticket_and_none_to_machine_mail(world):
    ticket, message = world.customer_mail("carl@customer.example", "Checkout broken", T0)
    assert world.acknowledge(ticket, message, T0) is not None
    assert world.acknowledge(ticket, message, T0 + timedelta(minutes=1)) is None  # a unique key, not a code path
    for headers in ({"Auto-Submitted": "auto-replied"}, {"Precedence": "bulk"}, {"List-Id": "<news.example>"},
                    {"X-Autoreply": "yes"}):
        other, mail = world.customer_mail("dana@customer.example", "Out of office", T0, **headers)
        assert world.acknowledge(other, mail, T0) is None
    daemon_ticket, bounce = world.customer_mail("MAILER-DAEMON@mx.example", "Undeliverable", T0)
    assert world.acknowledge(daemon_ticket, bounce, T0) is None
    skipped = Event.select().where(Event.action == "acknowledgement-skipped")
    assert skipped.count() == 5 and "machine mail" in skipped.first().detail["reason"]
    world.send(T0)
    assert [m.rcpt_tos for m in world.sink.messages] == [["carl@customer.example"]]
    [ack] = world.sink.messages
    assert "[T-1]" in ack.message["Subject"] and ack.message["Auto-Submitted"] == "auto-generated"


def test_zammad_per_ticket_cap_suppresses_the_eleventh_mail_in_ten_minutes(world):
    ticket, _message = world.customer_mail("carl@customer.example", "Checkout broken", T0)
    tier = world.ruleset.tier(1)
    rows = []
    for i in range(12):
        with db.write_transaction():
            rows.append(notify.queue_confirmation(ticket=ticket, tier=tier, actor="alice@example.com",
                                                  action_text=f"noted {i}", note="", now=T0 + timedelta(seconds=i),
                                                  **world.kw))
    assert [r.status for r in rows] == ["queued"] * 10 + ["suppressed"] * 2
    assert "this ticket already had 10 mails in the last 10 min (limit 10)" in rows[10].last_error
    world.send(T0 + timedelta(minutes=1))
    assert len(world.sink.messages) == 10
    # the window slides: eleven minutes later the ticket may mail again
    with db.write_transaction():
        later = notify.queue_confirmation(ticket=ticket, tier=tier, actor="alice@example.com", action_text="resolved",
                                          note="", now=T0 + timedelta(minutes=11), **world.kw)
    assert later.status == "queued"


def test_outside_addresses_are_capped_but_an_incident_storm_still_reaches_the_tier(world):
    rule = world.ruleset.rules[0]
    for i in range(31):
        ticket, _ = world.customer_mail(f"c{i}@customer.example", f"Down {i}", T0)
        with db.write_transaction():
            notify.queue_input_request(ticket=ticket, department="Billing", address="billing@partner.example",
                                       question="Charged twice?", requested_by="alice@example.com",
                                       now=T0 + timedelta(seconds=i), **world.kw)
            notify.queue_breach_alert(ticket=ticket, rule=rule, tier=world.ruleset.tier(1), breached="first response",
                                      due_at=T0, now=T0 + timedelta(seconds=i), **world.kw)
    requests = list(Outbox.select().where(Outbox.kind == "input-request").order_by(Outbox.id))
    assert [r.status for r in requests].count("suppressed") == 1  # Zammad: 30 per address in 10 min
    assert "billing@partner.example already had 30 mails in the last 10 min" in requests[-1].last_error
    # our own lead is not an outside address: 31 breaches in a minute all go out
    assert Outbox.select().where((Outbox.kind == "breach") & (Outbox.status == "queued")).count() == 31
    world.send(T0 + timedelta(minutes=1))
    assert delivered_to(world.sink, "billing@partner.example") == 30
    assert delivered_to(world.sink, "lead1@example.com") == 31


def test_a_dead_address_gets_one_attempt_a_day(world):
    world.sink.mode = "refuse_rcpt"
    world.sink.refused = {"gone@partner.example"}
    attempts = []
    for hour in range(30):
        at = T0 + timedelta(hours=hour)
        ticket, _ = world.customer_mail(f"c{hour}@customer.example", f"Question {hour}", at)
        with db.write_transaction():
            row = notify.queue_input_request(ticket=ticket, department="Partner", address="gone@partner.example",
                                             question="?", requested_by="alice@example.com", now=at, **world.kw)
        world.send(at)
        delivery = Delivery.get(Delivery.outbox == row.id)
        if delivery.status == "refused":
            attempts.append(hour)
        else:
            assert delivery.status == "suppressed" and "dead address" in delivery.last_error
    assert attempts == [0, 24]  # ≤ 1 attempt per 24 h after the first refusal
    # each refusal told the lead once (the notice goes out the next time the sender runs)
    notices = Outbox.select().where(Outbox.kind == "delivery-failure")
    assert notices.count() == 2 and {n.recipients[0] for n in notices} == {"lead1@example.com"}


def test_a_verp_bounce_blocks_the_address_and_is_attributed(world):
    ticket, _ = world.customer_mail("carl@customer.example", "Question", T0)
    with db.write_transaction():
        row = notify.queue_input_request(ticket=ticket, department="Partner", address="moved@partner.example",
                                         question="?", requested_by="alice@example.com", now=T0, **world.kw)
    world.send(T0)
    [sent] = world.sink.messages
    # later the remote MTA bounces it to our VERP return path
    named = outbox.record_bounce(sent.mail_from, SECRET, T0 + timedelta(minutes=5), "550 5.1.1 user unknown")
    assert named is not None
    bounced_row, delivery = named
    assert bounced_row.id == row.id and delivery.recipient == "moved@partner.example"
    assert delivery.status == "bounced" and bounced_row.status == "failed"
    assert outbox.record_bounce("support+bounce-1.0.aaaaaaaaaaaaaaaa@example.com", SECRET, T0, "x") is None
    reason = ratelimit.dead_address("moved@partner.example", T0 + timedelta(hours=1))
    assert reason and "bounced" in reason
    ticket2, _ = world.customer_mail("dana@customer.example", "Question 2", T0 + timedelta(hours=1))
    with db.write_transaction():
        second = notify.queue_input_request(ticket=ticket2, department="Partner", address="moved@partner.example",
                                            question="?", requested_by="alice@example.com",
                                            now=T0 + timedelta(hours=1), **world.kw)
    assert second.status == "suppressed"


def test_acknowledgements_through_the_mailbox(cli, env, rules_file, dovecot, smtp_sink, mail):
    """With `acknowledge_customers: true`, a person's new ticket is acknowledged once; machine
    mail never is; a hostile autoresponder opening ticket after ticket gets ≤ 3 an hour."""
    from tests.conftest import TEST_RULES

    env["ESCALATE_RULES"] = str(rules_file(TEST_RULES + "acknowledge_customers: true\n"))
    dovecot.append(mail(sender="Carl <carl@customer.example>", subject="How do I export invoices?", body="?",
                        message_id="c1@customer.example"))
    dovecot.append(mail(sender="ooo@customer.example", subject="Out of office", body="Away",
                        headers={"Auto-Submitted": "auto-replied"}))
    for n in range(8):  # strips Auto-Submitted, new subject and Message-ID every time (variant B)
        dovecot.append(mail(sender="bot@autoresponder.example", subject=f"Auto: received #{n}", body="Thanks",
                            message_id=f"bot{n}@autoresponder.example"))
    cli("run", "--once", "--now", "2026-11-02T09:00:00+00:00")
    received = [m.rcpt_tos[0] for m in smtp_sink.messages]
    assert received.count("carl@customer.example") == 1
    assert "ooo@customer.example" not in received
    assert received.count("bot@autoresponder.example") == 3
    [ack] = [m for m in smtp_sink.messages if m.rcpt_tos == ["carl@customer.example"]]
    assert ack.message["Subject"].startswith("[T-1] We received your message")
    assert ack.message["Auto-Submitted"] == "auto-generated"
    # Carl writes again on his ticket: no second acknowledgement
    dovecot.append(mail(sender="carl@customer.example", subject="Re: [T-1] How do I export invoices?", body="Any news?",
                        in_reply_to="c1@customer.example"))
    cli("run", "--once", "--now", "2026-11-02T09:05:00+00:00")
    assert [m.rcpt_tos[0] for m in smtp_sink.messages].count("carl@customer.example") == 1
    # the bot opened 5 tickets (its ticket limit; its other 3 mails went onto the fifth), and of
    # their 5 acknowledgements the cap let 3 go
    bot_tickets = [t for t in json.loads(cli("tickets", "list", "--json").output)
                   if t["requester"] == "bot@autoresponder.example"]
    assert len(bot_tickets) == 5 and sum(t["message_count"] for t in bot_tickets) == 8
    suppressed = json.loads(cli("outbox", "list", "--status", "suppressed", "--json").output)
    assert len(suppressed) == 2 and all("loop cap" in row["last_error"] for row in suppressed)


def test_the_per_ticket_cap_holds_for_mail_a_tick_decides_for_its_whole_batch(world):
    """The tick reads the cap's recent mail for all its due tickets at once (notify.BatchLookups):
    a ticket that already had its 10 mails is capped, one that had none in the batch is not."""
    capped, _ = world.customer_mail("carl@customer.example", "Checkout down", T0)
    calm, _ = world.customer_mail("dora@customer.example", "Checkout down too", T0)
    tier = world.ruleset.tier(1)
    for i in range(10):
        with db.write_transaction():
            notify.queue_confirmation(ticket=capped, tier=tier, actor="alice@example.com", action_text=f"noted {i}",
                                      note="", now=T0 + timedelta(minutes=10, seconds=i), **world.kw)
    Ticket.update(severity="urgent", next_due_at=T0).where(Ticket.id.in_([capped.id, calm.id])).execute()
    result = engine.tick(world.ruleset, world.renderer, SECRET, T0 + timedelta(minutes=16))
    assert sorted(result.escalated) == sorted([capped.ref, calm.ref])
    escalations = {row.ticket_id: row for row in Outbox.select().where(Outbox.kind == "escalation")}
    assert escalations[calm.id].status == "queued"
    assert escalations[capped.id].status == "suppressed"
    assert "this ticket already had 10 mails in the last 10 min (limit 10)" in escalations[capped.id].last_error
