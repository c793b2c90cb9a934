"""Tickets (`ticket`): the threading lookups ingest runs for every mail, in plain SQL (see messages.py)."""

from __future__ import annotations

from datetime import datetime

from ..models import Ticket, database

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
