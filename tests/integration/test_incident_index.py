"""Incidents in a mail storm: candidates come from the subject-word index, placeholder subjects
never form an incident, joining costs the same whatever the incident's size, and the incident's
primary ticket is kept as its tickets resolve and reopen."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from escalate.mail import subjects
from escalate.outbound.templates import Renderer
from escalate.rules.loader import load_ruleset
from escalate.store import db, rows
from escalate.store import incidents as store_incidents
from escalate.store.models import Incident, Message, Outbox, Ticket, TicketWord
from escalate.tickets import incidents
from escalate.tickets import lifecycle as tickets

from tests.integration.test_engine_rules import RULES
from tests.integration.test_incidents import T0, arrive, world  # noqa: F401  (the fixture)


@contextmanager
def statements():
    """Every SQL statement SQLite runs inside the block."""
    seen: list[str] = []
    connection = db.database.connection()
    connection.set_trace_callback(seen.append)
    try:
        yield seen
    finally:
        connection.set_trace_callback(None)


def test_a_similar_ticket_behind_hundreds_of_newer_ones_is_still_found(world):
    ruleset, _tick = world
    first = arrive(ruleset, "Payment gateway timeout at checkout", "ann@one.example", 0)
    for n in range(600):  # a busy half hour of other mail (scanning recent tickets stopped at 500)
        arrive(ruleset, f"Order {1000 + n} refund question", f"c{n}@many.example", 1 + n / 100)
    second = arrive(ruleset, "checkout payment gateway timeout", "bob@two.example", 20)

    assert Ticket.get_by_id(second.id).incident_id is not None
    assert Ticket.get_by_id(second.id).incident_id == Ticket.get_by_id(first.id).incident_id
    # each subject's words once per ticket
    assert sorted(w.word for w in TicketWord.select().where(TicketWord.ticket == first.id)) == [
        "checkout", "gateway", "payment", "timeout"]


def test_candidates_are_read_through_the_word_index(world):
    ruleset, _tick = world
    arrive(ruleset, "Payment gateway timeout", "ann@one.example", 0)
    sql = store_incidents.most_similar_sql(2)
    params = [*["payment", TicketWord.created_at.db_value(T0), "bob@two.example", 10] * 2, 0.5, 3, 3]
    plan = [row[3] for row in db.database.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]
    assert any("ticket_word_word_created_at_ticket_id_word_count" in step for step in plan), plan
    assert not any(step.startswith("SCAN") and "ticket" in step for step in plan), plan


def test_placeholder_subjects_give_no_words_and_never_form_an_incident(world):
    ruleset, _tick = world
    for n, subject in enumerate(["", "(no subject)", "Re:", "Fwd:", "RE: Fwd:", "(No Subject)", "re:"]):
        arrive(ruleset, subject, f"c{n}@customers.example", n)
    assert Incident.select().count() == 0
    assert TicketWord.select().count() == 0
    assert subjects.subject_words("Re: (no subject)") == frozenset()
    assert subjects.subject_words("Re: login page down") == {"login", "page", "down"}


def test_joining_costs_the_same_whatever_the_incident_s_size_and_makes_only_the_primary_due(world):
    ruleset, tick = world
    costs = {}
    for size in (3, 60):
        start = 100 * size  # minutes: each incident on its own, out of the other's window
        members = [arrive(ruleset, "Mail server rejects all logins", f"c{n}@s{size}.example", start + n / 10)
                   for n in range(size)]
        tick(T0 + timedelta(minutes=start + 10))  # everything evaluated: nothing is due now
        assert Ticket.select().where(Ticket.next_due_at <= T0 + timedelta(minutes=start + 10)).count() == 0
        with statements() as seen:
            joiner = arrive(ruleset, "mail server rejects logins", f"new@s{size}.example", start + 11)
        costs[size] = len(seen)
        incident = Incident.get_by_id(Ticket.get_by_id(joiner.id).incident_id)
        assert incident.customers == size + 1
        assert incident.primary_ticket_id == members[0].id
        due_now = {t.id for t in Ticket.select().where(Ticket.next_due_at == T0 + timedelta(minutes=start + 11))}
        assert due_now == {members[0].id, joiner.id}  # not the incident's other tickets
        # no statement reads the incident's members
        assert not [s for s in seen if '"incident_id" =' in s and 'FROM "ticket"' in s], seen
    assert costs[3] == costs[60]


def test_incident_facts_come_from_the_incident_not_its_tickets(world):
    ruleset, _tick = world
    a = arrive(ruleset, "Login page returns error 500", "ann@one.example", 0)
    b = arrive(ruleset, "login page error 500 again", "bob@two.example", 10)
    again = arrive(ruleset, "Login page returns error 500!!", "bob@two.example", 15)  # a customer counts once
    c = arrive(ruleset, "Cannot log in: login page error 500", "cid@three.example", 30)
    alone = arrive(ruleset, "Invoice address change", "dan@four.example", 31)
    batch = [Ticket.get_by_id(t.id) for t in (a, b, again, c, alone)]
    incidents.forget_joins()
    with statements() as seen:
        facts = incidents.incident_facts_many(batch)
    assert len(seen) == 2 and not [s for s in seen if '"ticket"' in s], seen  # the incident, its customers
    joins = tuple(T0 + timedelta(minutes=m) for m in (0, 10, 30))
    assert facts == {a.id: (joins, True, frozenset()), b.id: (joins, False, frozenset()),
                     again.id: (joins, False, frozenset()), c.id: (joins, False, frozenset()),
                     alone.id: ((), True, frozenset())}
    with statements() as seen:  # the join times already read: the incident's row alone
        assert incidents.incident_facts(batch[1])[:2] == (joins, False)
    assert len(seen) == 1 and '"incident_customer"' not in seen[0], seen
    # another customer joins: read again
    d = arrive(ruleset, "login page error 500 for us too", "eve@five.example", 40)
    assert incidents.incident_facts(Ticket.get_by_id(d.id))[:2] == ((*joins, T0 + timedelta(minutes=40)), False)


def customer_writes(ticket: Ticket, at) -> None:
    message = rows.create(Message, ticket=ticket, dedupe_key=f"m-{ticket.id}-{at}", sha256="x", kind="customer",
                          from_addr=ticket.requester, subject="still broken", received_at=at, raw=b"")
    tickets.add_message(ticket, message, at)


def test_the_next_active_ticket_speaks_for_the_incident_when_the_primary_resolves(world):
    ruleset, tick = world
    a = arrive(ruleset, "Login page returns error 500", "ann@one.example", 0)
    b = arrive(ruleset, "login page error 500 again", "bob@two.example", 10)
    c = arrive(ruleset, "Cannot log in: login page error 500", "cid@three.example", 30)
    tick(T0 + timedelta(minutes=31))
    assert [o.ticket_id for o in Outbox.select().where(Outbox.rule == "incident")] == [a.id]

    resolved_at = T0 + timedelta(minutes=40)
    with db.write_transaction():
        tickets.resolve(Ticket.get_by_id(a.id), "agent@example.com", resolved_at, via="cli")
    incident = Incident.get()
    assert incident.primary_ticket_id == b.id
    assert Ticket.get_by_id(b.id).next_due_at == resolved_at  # its incident rules now act: look at it
    assert incidents.incident_facts(Ticket.get_by_id(b.id))[1] is True
    assert incidents.incident_facts(Ticket.get_by_id(c.id))[1] is False

    with db.write_transaction():  # a non-primary resolving changes nothing
        tickets.resolve(Ticket.get_by_id(c.id), "agent@example.com", resolved_at, via="cli")
    assert Incident.get().primary_ticket_id == b.id

    reopened_at = T0 + timedelta(minutes=50)
    with db.write_transaction():  # the first ticket is active again: it speaks for the incident again
        customer_writes(Ticket.get_by_id(a.id), reopened_at)
    assert Incident.get().primary_ticket_id == a.id
    assert Ticket.get_by_id(b.id).next_due_at == reopened_at  # its incident rule no longer holds there
    assert incidents.incident_facts(Ticket.get_by_id(b.id))[1] is False

    with db.write_transaction():  # every ticket resolved: none speaks for it
        for ticket in (a, b):
            tickets.resolve(Ticket.get_by_id(ticket.id), "agent@example.com", reopened_at, via="cli")
    assert Incident.get().primary_ticket_id is None


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_linking_and_facts_on_both_databases(database_url, rules_file):
    db.connect(database_url)
    ruleset = load_ruleset(rules_file(RULES), template_names=Renderer().names())
    a = arrive(ruleset, "Login page returns error 500", "ann@one.example", 0)
    near = arrive(ruleset, "Login page slow", "zed@nine.example", 1)  # one word in four shared: not similar
    b = arrive(ruleset, "login page error 500 again", "bob@two.example", 10)
    c = arrive(ruleset, "Cannot log in: login page error 500", "cid@three.example", 30)
    assert Ticket.get_by_id(near.id).incident_id is None
    incident = Incident.get()
    assert {t.id for t in Ticket.select().where(Ticket.incident == incident)} == {a.id, b.id, c.id}
    assert (incident.customers, incident.primary_ticket_id) == (3, a.id)
    joins = tuple(T0 + timedelta(minutes=m) for m in (0, 10, 30))
    assert incidents.incident_facts_many([Ticket.get_by_id(t.id) for t in (a, c)]) == {
        a.id: (joins, True, frozenset()), c.id: (joins, False, frozenset())}
