"""The tick under business-hours calendars, pauses, repeats and rule actions, on a real SQLite
database with the clock moved (never slept)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from escalate.engine import tick as engine
from escalate.outbound.templates import Renderer
from escalate.rules.loader import load_ruleset
from escalate.store import db
from escalate.store.models import Escalation, Event, Message, Outbox, Ticket
from escalate.tickets import lifecycle as tickets

UTC = timezone.utc
SECRET = b"s" * 32

RULES = """\
version: 1
timezone: Europe/Berlin
support_address: support@example.com
calendars:
  office:
    hours:
      mon-fri: "09:00-17:00"
    holidays: [2026-12-24, 2026-12-25]
severities:
  urgent:
    keywords: [outage]
    first_response: 15m
    resolution: 4h
  normal:
    default: true
    first_response: 4h
    resolution: 2d
    calendar: office
tiers:
  - level: 1
    name: Frontline
    group: tier1@example.com
    roster: [alice@example.com]
    lead: lead1@example.com
  - level: 2
    name: Specialists
    group: tier2@example.com
    roster: [erin@example.com]
    consulted:
      Legal: legal@example.com
  - level: 3
    name: Critical
    group: tier3@example.com
    roster: [heidi@example.com]
    lead: lead3@example.com
    informed: [boss@example.com]
incidents:
  window: 1h
  similarity: 0.5
rules:
  - name: urgent-no-first-response
    when:
      severity: urgent
      no_first_response_for: 15m
    then:
      escalate_to: 1
      repeat_every: 10m
      next_tier_after: 2
      alert_lead: true
  - name: normal-first-response
    when:
      severity: normal
      past_target: first_response
    then:
      escalate_to: 1
      repeat_every: 1h
  - name: agent-requested
    when:
      escalation_requested: true
    then:
      escalate_to: 2
      ask_consulted: true
  - name: incident
    when:
      customers_affected: 3
    then:
      set_severity: urgent
      escalate_to: 3
      alert_lead: true
      inform: true
"""


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.fixture
def world(tmp_path, rules_file):
    db.connect(f"sqlite:///{tmp_path / 'engine.db'}")
    renderer = Renderer()
    ruleset = load_ruleset(rules_file(RULES), template_names=renderer.names())

    def tick(at: datetime) -> engine.TickResult:
        return engine.tick(ruleset, renderer, SECRET, at)
    return ruleset, tick


def open_ticket(subject: str, severity: str, at: datetime, requester: str = "c@customer.example") -> Ticket:
    with db.write_transaction():
        ticket = tickets.open_ticket(subject=subject, normalised_subject=subject.lower(), requester=requester,
                                     requester_name="", severity=severity, reference_prefix="T", now=at,
                                     reason="test")
        return ticket


def reload(ticket: Ticket) -> Ticket:
    return Ticket.get_by_id(ticket.id)


def mails(ticket: Ticket, kind: str | None = None) -> list[tuple]:
    query = Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id)
    return [(o.kind, o.step, o.tier, o.recipients) for o in query if kind is None or o.kind == kind]


def customer_writes(ticket: Ticket, at: datetime) -> None:
    with db.write_transaction():
        message = Message.create(dedupe_key=f"m{at.timestamp()}", sha256="x", kind="customer", from_addr=ticket.requester,
                                 received_at=at, raw=b"")
        tickets.add_message(reload(ticket), message, at)


# Friday 2026-11-06 16:00 CET is 15:00 UTC; the office closes at 17:00 CET (16:00 UTC)
def test_next_due_is_exact_in_business_time_and_a_tick_reads_only_due_tickets(world):
    _ruleset, tick = world
    friday = open_ticket("printer jams", "normal", utc("2026-11-06T15:00"))
    assert tick(utc("2026-11-06T15:00")).evaluated == 1
    # 1h on Friday, 3h on Monday from 09:00 CET: 12:00 CET = 11:00 UTC, not Saturday
    assert reload(friday).next_due_at == utc("2026-11-09T11:00")
    for quiet in ("2026-11-06T19:00", "2026-11-07T12:00", "2026-11-08T23:00", "2026-11-09T10:59"):
        assert tick(utc(quiet)).evaluated == 0
    result = tick(utc("2026-11-09T11:00"))
    assert (result.evaluated, result.escalated) == (1, [friday.ref])
    # the reminder an hour of business time later; evaluated at that exact moment
    assert reload(friday).next_due_at == utc("2026-11-09T12:00")
    steps = list(Escalation.select().where(Escalation.ticket == friday))
    assert [(s.rule, s.started_at) for s in steps] == [("normal-first-response", utc("2026-11-09T11:00"))]
    # every change is an audit event naming its rule
    events = Event.select().where((Event.ticket == friday) & (Event.action == "escalated"))
    assert [(e.rule, e.detail["due_at"]) for e in events] == [("normal-first-response", "2026-11-09T11:00:00+00:00")]


def test_waiting_on_the_customer_pauses_the_clock(world):
    _ruleset, tick = world
    ticket = open_ticket("invoice copy", "normal", utc("2026-11-04T08:00"))  # Wed 09:00 CET
    tick(utc("2026-11-04T08:00"))
    assert reload(ticket).next_due_at == utc("2026-11-04T12:00")
    with db.write_transaction():
        tickets.wait_on_customer(reload(ticket), "alice@example.com", utc("2026-11-04T10:00"), via="test")
    tick(utc("2026-11-04T10:00"))
    assert reload(ticket).next_due_at is None  # paused: nothing can happen until the customer writes
    assert tick(utc("2026-11-04T13:00")).evaluated == 0
    customer_writes(ticket, utc("2026-11-05T08:00"))  # Thu 09:00 CET: 2h counted, 2h left
    tick(utc("2026-11-05T08:00"))
    assert reload(ticket).status == "open"
    assert reload(ticket).next_due_at == utc("2026-11-05T10:00")
    assert tick(utc("2026-11-05T10:00")).escalated == [ticket.ref]


def test_repeat_until_acknowledged_next_tier_after_m_repeats_and_the_lead_told_once(world):
    _ruleset, tick = world
    start = utc("2026-11-07T09:00")  # a Saturday: urgent runs on the always calendar
    ticket = open_ticket("outage", "urgent", start)
    for minutes in (0, 15, 25, 35, 45, 55):
        tick(start + timedelta(minutes=minutes))
    assert mails(ticket, None) == [
        ("escalation", 0, 1, ["tier1@example.com"]), ("breach", 0, 1, ["lead1@example.com"]),
        ("reminder", 1, 1, ["tier1@example.com"]), ("reminder", 2, 1, ["tier1@example.com"]),
        # reminders count from 1 within each tier
        ("next-tier", 0, 2, ["tier2@example.com"]), ("reminder", 1, 2, ["tier2@example.com"])]
    with db.write_transaction():
        tickets.acknowledge(reload(ticket), "erin@example.com", start + timedelta(minutes=58), via="test")
    for minutes in (60, 65, 75, 200):
        tick(start + timedelta(minutes=minutes))
    assert len(mails(ticket)) == 6  # acknowledged: no more
    assert reload(ticket).tier == 2
    actions = [(e.action, e.rule) for e in Event.select().where(Event.ticket == ticket).order_by(Event.id)
               if e.rule]
    assert actions[:3] == [("escalated", "urgent-no-first-response"), ("lead-alerted", "urgent-no-first-response"),
                           ("reminded", "urgent-no-first-response")]
    assert ("escalated-next-tier", "urgent-no-first-response") in actions


def test_an_explicit_request_escalates_and_asks_the_consulted(world):
    _ruleset, tick = world
    at = utc("2026-11-04T09:00")
    ticket = open_ticket("contract question", "normal", at)
    tick(at)
    with db.write_transaction():
        tickets.request_escalation(reload(ticket), "alice@example.com", at + timedelta(minutes=5), via="test")
    tick(at + timedelta(minutes=5))
    assert mails(ticket) == [("escalation", 0, 2, ["tier2@example.com"]),
                             ("input-request", 0, None, ["legal@example.com"])]
    tick(at + timedelta(minutes=6))
    assert len(mails(ticket)) == 2
