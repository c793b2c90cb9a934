"""tickets.schedule_many: a tick batch's next due times and the tiers its escalations raised, written
together — a tier only ever goes up — on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from escalate.store import db, rows
from escalate.store.models import Ticket
from escalate.tickets import lifecycle as tickets

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


def _ticket(tier: int | None) -> int:
    return rows.create(Ticket, subject="s", normalised_subject="s", requester="a@example.org", severity="normal",
                       created_at=NOW, updated_at=NOW, next_due_at=NOW, tier=tier).id


def _stored(ticket_id: int) -> tuple:
    ticket = Ticket.get_by_id(ticket_id)
    return ticket.next_due_at, ticket.tier


def test_due_times_and_raised_tiers_are_written_and_a_tier_never_goes_down(database_url):
    db.connect(database_url)
    later = NOW + timedelta(hours=1)
    with db.write_transaction():
        untiered, lower, higher, unchanged, tier_only, idle = (_ticket(None), _ticket(1), _ticket(3), _ticket(2),
                                                              _ticket(1), _ticket(2))
        tickets.schedule_many({untiered: later, lower: later, higher: None, unchanged: later, idle: None},
                              {untiered: 1, lower: 2, higher: 2, tier_only: 3})
    assert _stored(untiered) == (later, 1)
    assert _stored(lower) == (later, 2)
    assert _stored(higher) == (None, 3)  # raised to 2 by this batch, but 3 was reached meanwhile: kept
    assert _stored(unchanged) == (later, 2)  # no tier given: left as it was
    assert _stored(tier_only) == (NOW, 3)  # its due time left alone (an action made it due again)
    assert _stored(idle) == (None, 2)


def test_one_ticket_scheduled_keeps_the_tier_it_reached(database_url):
    db.connect(database_url)
    with db.write_transaction():
        ticket = Ticket.get_by_id(_ticket(None))
        ticket.tier = 2
        tickets.schedule(ticket, NOW + timedelta(minutes=5))
        stale = Ticket.get_by_id(ticket.id)
        stale.tier = 1  # read before, written after: must not lower it
        tickets.schedule(stale, None)
    assert _stored(ticket.id) == (None, 2)
