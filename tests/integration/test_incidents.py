"""Impact on several customers: similar tickets from distinct senders within the window become one
incident; the incident rule raises the severity of all of them and escalates once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from escalate.engine import tick as engine
from escalate.outbound.templates import Renderer
from escalate.rules.loader import load_ruleset
from escalate.store import db
from escalate.store.models import Event, Incident, Outbox, Ticket
from escalate.tickets import incidents
from escalate.tickets import lifecycle as tickets

from tests.integration.test_engine_rules import RULES, SECRET, utc

T0 = utc("2026-11-04T09:00")


@pytest.fixture
def world(tmp_path, rules_file):
    db.connect(f"sqlite:///{tmp_path / 'incidents.db'}")
    renderer = Renderer()
    ruleset = load_ruleset(rules_file(RULES), template_names=renderer.names())
    return ruleset, lambda at: engine.tick(ruleset, renderer, SECRET, at)


def arrive(ruleset, subject: str, sender: str, minutes: float) -> Ticket:
    at = T0 + timedelta(minutes=minutes)
    with db.write_transaction():
        ticket = tickets.open_ticket(subject=subject, normalised_subject=subject.lower(), requester=sender,
                                     requester_name="", severity="normal", reference_prefix="T", now=at, reason="test")
        incidents.link_new_ticket(ticket, ruleset, at)
    return ticket


def test_similar_tickets_from_distinct_customers_are_one_incident_escalated_once(world):
    ruleset, tick = world
    a = arrive(ruleset, "Login page returns error 500", "ann@one.example", 0)
    tick(T0)
    b = arrive(ruleset, "login page error 500 again", "bob@two.example", 10)
    same_customer = arrive(ruleset, "Login page returns error 500!!", "bob@two.example", 15)
    unrelated = arrive(ruleset, "Invoice address change", "cid@three.example", 20)
    tick(T0 + timedelta(minutes=20))
    assert Outbox.select().where(Outbox.rule == "incident").count() == 0  # two customers: not yet
    c = arrive(ruleset, "Cannot log in: login page error 500", "cid@three.example", 30)
    tick(T0 + timedelta(minutes=30))
    tick(T0 + timedelta(minutes=31))
    late = arrive(ruleset, "login page error 500", "dan@four.example", 200)  # outside the window of 1h

    incident = Incident.get()
    members = {t.ref for t in Ticket.select().where(Ticket.incident == incident)}
    assert members == {a.ref, b.ref, same_customer.ref, c.ref}
    assert incident.customers == 3
    assert Ticket.get_by_id(unrelated.id).incident_id is None and Ticket.get_by_id(late.id).incident_id is None

    # escalated once, about the first ticket, to tier 3; its lead told once; the digest noted once
    escalations = [(o.ticket.ref, o.kind, o.tier) for o in Outbox.select().where(Outbox.rule == "incident")]
    assert escalations == [(a.ref, "escalation", 3)]
    assert [o.recipients for o in Outbox.select().where(Outbox.rule == "incident#breach")] == [["lead3@example.com"]]
    assert Event.select().where((Event.action == "digest") & (Event.rule == "incident")).count() == 1
    # and every ticket of the incident is urgent now, each change audited with the rule
    assert {t.severity for t in Ticket.select().where(Ticket.incident == incident)} == {"urgent"}
    changed = {e.ticket.ref for e in Event.select().where((Event.action == "severity-changed")
                                                        & (Event.rule == "incident"))}
    assert changed == members
    # urgent now: the others' own urgent clocks run (per ticket), but the incident rule does not repeat per ticket
    tick(T0 + timedelta(minutes=90))
    assert Outbox.select().where(Outbox.rule == "incident").count() == 1
    assert Outbox.select().where(Outbox.rule == "urgent-no-first-response").count() >= 4


def test_an_incident_acts_once_even_when_its_primary_ticket_resolves(world):
    """The incident rule fires through the incident's primary ticket. When that ticket is resolved
    the next one speaks for the incident, but the incident has been escalated: no second tier-3
    escalation, breach alert or digest entry (this fired again before ladders)."""
    ruleset, tick = world
    a = arrive(ruleset, "Login page returns error 500", "ann@one.example", 0)
    b = arrive(ruleset, "login page error 500 again", "bob@two.example", 10)
    arrive(ruleset, "Cannot log in: login page error 500", "cid@three.example", 20)
    tick(T0 + timedelta(minutes=20))
    assert [(o.ticket.ref, o.tier) for o in Outbox.select().where(Outbox.rule == "incident")] == [(a.ref, 3)]
    with db.write_transaction():
        tickets.resolve(Ticket.get_by_id(a.id), "heidi@example.com", T0 + timedelta(minutes=25), via="test")
    for minutes in (25, 26, 60, 120):
        tick(T0 + timedelta(minutes=minutes))
    assert Outbox.select().where(Outbox.rule == "incident").count() == 1
    assert Outbox.select().where(Outbox.rule == "incident#breach").count() == 1
    assert Event.select().where((Event.action == "digest") & (Event.rule == "incident")).count() == 1
    assert engine.facts_of(Ticket.get_by_id(b.id)).incident_primary  # b speaks for it now, and stays quiet
    assert Incident.get().rules_fired == ["incident"]


def test_an_incident_rule_that_fails_half_way_changes_no_ticket(world, monkeypatch):
    """The incident rule sets the severity of every ticket of the incident straight away (inside
    the primary ticket's savepoint), then records that it fired on the incident. A failure there
    must take the severity changes back with the ticket's mail and events; the next tick acts once."""
    ruleset, tick = world
    members = [arrive(ruleset, subject, sender, minutes) for subject, sender, minutes in (
        ("Login page returns error 500", "ann@one.example", 0), ("login page error 500 again", "bob@two.example", 1),
        ("Cannot log in: login page error 500", "cid@three.example", 2))]
    real = engine._incident_fired

    def fail(*args):
        raise RuntimeError("a bug after the rule's actions ran")

    monkeypatch.setattr(engine, "_incident_fired", fail)
    result = tick(T0 + timedelta(minutes=3))
    assert result.failed == [members[0].ref]
    assert {Ticket.get_by_id(t.id).severity for t in members} == {"normal"}
    assert not Event.select().where(Event.action.in_(("severity-changed", "lead-alerted", "digest"))).exists()
    assert Outbox.select().where(Outbox.rule.startswith("incident")).count() == 0

    monkeypatch.setattr(engine, "_incident_fired", real)
    tick(T0 + timedelta(minutes=3) + engine.RETRY_AFTER_FAILURE)
    assert {Ticket.get_by_id(t.id).severity for t in members} == {"urgent"}
    assert [o.ticket_id for o in Outbox.select().where(Outbox.rule == "incident")] == [members[0].id]
