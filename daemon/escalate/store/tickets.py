"""Tickets (`ticket`): the threading lookups ingest runs for every mail, in plain SQL (see messages.py)."""

from __future__ import annotations

from datetime import datetime

from escalate.store import marks, rows
from escalate.store.models import ACTIVE_STATUSES_SQL, Escalation, Event, Ticket, database

ID_BY_REF = 'SELECT "id" FROM "ticket" WHERE "ref" = ?'
# the fallback thread: the requester's latest open ticket on the same subject, updated recently
LATEST_BY_SUBJECT = ('SELECT "id" FROM "ticket" WHERE "requester" = ? AND "normalised_subject" = ? '
                     'AND "updated_at" >= ? AND "status" != \'closed\' ORDER BY "updated_at" DESC LIMIT 1')


def id_by_ref(ref: str) -> int | None:
    """The id of the ticket called `ref` ("T-12"), or None."""
    return _first(ID_BY_REF, [ref])


def latest_by_subject(requester: str, normalised_subject: str, since: datetime) -> int | None:
    """The id of `requester`'s ticket on this subject updated last, at or after `since` and not
    closed; None if there is none."""
    return _first(LATEST_BY_SUBJECT, [requester, normalised_subject, Ticket.updated_at.db_value(since)])


def _first(sql: str, params: list):
    row = database.execute_sql(sql, params).fetchone()
    return row[0] if row else None


# the sender's latest tickets (the requester index), once per new ticket
SENDER_TICKETS = ('SELECT "id", "created_at", "status" FROM "ticket" WHERE "requester" = ? AND "created_at" > ? '
                  'ORDER BY "created_at" DESC, "id" DESC LIMIT ?')
LATEST_ACTIVE = (f'SELECT "id" FROM "ticket" WHERE "requester" = ? AND "status" IN ({ACTIVE_STATUSES_SQL}) '
                 'ORDER BY "created_at" DESC, "id" DESC LIMIT 1')


def sender_tickets(requester: str, since: datetime, most: int) -> list[tuple[int, datetime, str]]:
    """(id, created_at, status) of `requester`'s newest tickets opened after `since`, `most` at most, newest first."""
    found = database.execute_sql(SENDER_TICKETS, [requester, Ticket.created_at.db_value(since), most]).fetchall()
    return [(ticket_id, Ticket.created_at.python_value(at), status) for ticket_id, at, status in found]


def latest_active(requester: str) -> int | None:
    """The id of `requester`'s newest ticket still active, or None."""
    return _first(LATEST_ACTIVE, [requester])


# a ticket's audit trail as of a moment, newest first (equal times in the order written)
HISTORY = 'SELECT "at", "actor", "action", "rule", "detail" FROM "event" WHERE "ticket_id" = ? AND "at" <= ? ' \
          'ORDER BY "at" DESC, "id" DESC LIMIT ?'


def history(ticket_id: int, as_of: datetime, most: int) -> list[tuple[datetime, str, str, str | None, object]]:
    """(at, actor, action, rule, detail as stored) of the ticket's last `most` audit events recorded by `as_of`, newest first."""
    found = database.execute_sql(HISTORY, [ticket_id, Event.at.db_value(as_of), most]).fetchall()
    return [(Event.at.python_value(at), actor, action, rule, detail) for at, actor, action, rule, detail in found]


# A tick's claim, on next_due_at alone, so SQLite walks that index (engine._claim_due says why);
# PostgreSQL locks the rows it claims, skipping those another instance holds. Loaded without
# peewee's row wrapper (rows.py): a tick claims up to 500.
DUE = 'WHERE "next_due_at" <= ? ORDER BY "next_due_at", "id" LIMIT ?'
LOCK_CLAIMED = " FOR UPDATE SKIP LOCKED"


def claim_due(now: datetime, batch: int, *, lock: bool) -> list[Ticket]:
    """Up to `batch` tickets due by `now`, oldest due first; `lock`: row-locked until commit, rows
    another transaction holds skipped (PostgreSQL)."""
    return rows.select_models(Ticket, DUE + LOCK_CLAIMED if lock else DUE, [Ticket.next_due_at.db_value(now), batch])


ESCALATIONS_OF = 'WHERE "ticket_id" IN ({marks})'


def escalations_of(ticket_ids: list[int]) -> list[Escalation]:
    """Every ladder row (the current one and the history) of these tickets, in one query."""
    return rows.select_models(Escalation, ESCALATIONS_OF.format(marks=marks(len(ticket_ids))), ticket_ids)


CREATED_AT = 'SELECT "created_at" FROM "ticket" WHERE "id" = ?'
# a drill's tickets are never made due by what happens to others
MAKE_DUE = f'UPDATE "ticket" SET "next_due_at" = ? WHERE "id" = ? AND "status" IN ({ACTIVE_STATUSES_SQL}) AND NOT "drill"'
FIRST_ACTIVE_OF_INCIDENT = (f'SELECT "id" FROM "ticket" WHERE "incident_id" = ? AND "status" IN ({ACTIVE_STATUSES_SQL}) '
                            'AND "id" <> ? ORDER BY "created_at", "id" LIMIT 1')


def created_at(ticket_id: int) -> datetime | None:
    """When the ticket was opened; None if there is no such ticket."""
    row = database.execute_sql(CREATED_AT, [ticket_id]).fetchone()
    return Ticket.created_at.python_value(row[0]) if row else None


def make_due(ticket_id: int, now: datetime) -> None:
    """The ticket is due at `now`, if it is active and not a drill's."""
    database.execute_sql(MAKE_DUE, [Ticket.next_due_at.db_value(now), ticket_id])


def first_active_of_incident(incident_id: int, other_than: int) -> int | None:
    """The id of the incident's first active ticket (by creation) other than `other_than`, or None."""
    return _first(FIRST_ACTIVE_OF_INCIDENT, [incident_id, other_than])


# A tier only ever goes up when an evaluation's outcome is written: an action of the same tick batch
# may have saved one of these tickets from an earlier read (an incident's other tickets), and that
# must not lower what was reached. With no tier given (NULL) it stays as it is.
_RAISED_TIER = '"tier" = CASE WHEN "tier" IS NULL OR "tier" < ? THEN ? ELSE "tier" END'
SET_NEXT_DUE = f'UPDATE "ticket" SET "next_due_at" = ?, {_RAISED_TIER} WHERE "id" = ?'
RAISE_TIER = f'UPDATE "ticket" SET {_RAISED_TIER} WHERE "id" = ?'
SET_RULES_FIRED = 'UPDATE "ticket" SET "rules_fired" = ? WHERE "id" = ?'


def set_next_due(next_due: dict[int, datetime | None], raised: dict[int, int]) -> None:
    """Each ticket's next due time, and the tier `raised` gives it if that is higher (one executemany)."""
    when = Ticket.next_due_at.db_value
    rows.execute_many(SET_NEXT_DUE, [(when(at), raised.get(ticket_id), raised.get(ticket_id), ticket_id)
                                     for ticket_id, at in next_due.items()])


def raise_tiers(raised: dict[int, int]) -> None:
    """Each ticket's tier, if the one given is higher (one executemany)."""
    rows.execute_many(RAISE_TIER, [(tier, tier, ticket_id) for ticket_id, tier in raised.items()])


def set_rules_fired(fired: dict[int, dict]) -> None:
    """Each ticket's record of the rules that fired on it (one executemany)."""
    rows.execute_many(SET_RULES_FIRED, [(Ticket.rules_fired.db_value(value), ticket_id)
                                        for ticket_id, value in fired.items()])
