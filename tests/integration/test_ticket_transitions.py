"""The ticket state machine refuses, by its transition table, an action a ticket's status does not
allow, before it changes anything: the refusal says which statuses the action applies to."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from escalate.store import db
from escalate.store.models import TICKET_STATUSES, Event, Ticket
from escalate.tickets import lifecycle
from escalate.tickets.lifecycle import TRANSITIONS, TicketStateError

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)
ACTIONS = {  # the people's actions and the event each moves the ticket by
    "acknowledge": lambda t: lifecycle.acknowledge(t, "bob@example.com", NOW, via="cli"),
    "resolve": lambda t: lifecycle.resolve(t, "bob@example.com", NOW, via="cli"),
    "wait": lambda t: lifecycle.wait_on_customer(t, "bob@example.com", NOW, via="cli"),
    "close": lambda t: lifecycle.close(t, "bob@example.com", NOW, via="cli"),
}


@pytest.mark.parametrize("status", TICKET_STATUSES)
@pytest.mark.parametrize("event", sorted(ACTIONS))
def test_an_action_applies_exactly_where_the_table_lists_it_and_a_refusal_changes_nothing(database_url, event, status):
    db.connect(database_url)
    with db.write_transaction():
        ticket = lifecycle.open_ticket(subject="Export broken", normalised_subject="export broken",
                                       requester="carl@customer.example", requester_name="Carl", severity="normal",
                                       now=NOW, reference_prefix="T", reason="keywords")
    Ticket.update(status=status).where(Ticket.id == ticket.id).execute()
    ticket = Ticket.get_by_id(ticket.id)
    events = Event.select().count()
    with db.write_transaction():
        if (status, event) in TRANSITIONS:
            ACTIONS[event](ticket)
            assert Ticket.get_by_id(ticket.id).status == TRANSITIONS[(status, event)]
            return
        with pytest.raises(TicketStateError) as refused:
            ACTIONS[event](ticket)
    assert str(refused.value).startswith(f"{ticket.ref} is {status}; only ")
    stored = Ticket.get_by_id(ticket.id)
    assert (stored.status, stored.acknowledged_at, stored.assignee, stored.resolved_at) == (status, None, None, None)
    assert ticket.acknowledged_at is None and ticket.assignee is None and ticket.waiting_since is None
    assert Event.select().count() == events  # nothing recorded


def test_the_refusal_names_the_statuses_the_action_applies_to():
    with pytest.raises(TicketStateError, match="T-7 is resolved; only new, open or waiting tickets can be acknowledged"):
        lifecycle.status_after("resolved", "acknowledge", "T-7")
    with pytest.raises(TicketStateError, match="T-7 is open; only resolved tickets can be closed"):
        lifecycle.status_after("open", "close", "T-7")
