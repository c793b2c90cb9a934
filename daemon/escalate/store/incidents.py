"""Incidents (`incident`, `incident_customer`, `ticket_word`): finding the most similar ticket of
another customer, and what the rules read of a ticket's incident."""

from __future__ import annotations

import functools
from datetime import datetime

from escalate.store import marks
from escalate.store.models import ACTIVE_STATUSES_SQL, Incident, IncidentCustomer, Ticket, TicketWord, database

# One index range per word, newest first (CROSS JOIN keeps SQLite on the word index rather than
# the ticket status index; PostgreSQL plans it as an inner join). Parameters: word, since,
# requester, limit. `{n}` names each word's subquery.
CANDIDATES_OF_A_WORD = ('SELECT * FROM (SELECT w."ticket_id", t."incident_id", w."word_count", w."created_at" '
                        'FROM "ticket_word" w CROSS JOIN "ticket" t WHERE t."id" = w."ticket_id" '
                        'AND w."word" = ? AND w."created_at" >= ? AND t."requester" <> ? '
                        f'AND t."status" IN ({ACTIVE_STATUSES_SQL}) ORDER BY w."created_at" DESC LIMIT ?) AS w{{n}}')
# Per candidate the words it shares, its Jaccard score (shared / (ours + its - shared)) against the
# threshold, and the best first, with its ref. Parameters: threshold, our word count, our word count.
MOST_SIMILAR = ('SELECT "ticket_id", "incident_id", (SELECT r."ref" FROM "ticket" r WHERE r."id" = scored."ticket_id") '
                'FROM (SELECT "ticket_id", "incident_id", COUNT(*) AS shared, MAX("word_count") AS theirs, '
                'MAX("created_at") AS created FROM ({candidates}) AS found GROUP BY "ticket_id", "incident_id") AS scored '
                'WHERE shared >= ? * (? + theirs - shared) '
                'ORDER BY shared * 1.0 / (? + theirs - shared) DESC, CASE WHEN "incident_id" IS NULL THEN 1 ELSE 0 END, '
                'created DESC, "ticket_id" DESC LIMIT 1')
INCIDENTS = 'SELECT "id", "customers", "primary_ticket_id", "rules_fired" FROM "incident" WHERE "id" IN ({marks})'
JOIN_TIMES = 'SELECT "incident_id", "joined_at" FROM "incident_customer" WHERE "incident_id" IN ({marks})'


@functools.lru_cache(maxsize=None)
def most_similar_sql(words: int) -> str:
    """MOST_SIMILAR over the candidates of `words` words."""
    return MOST_SIMILAR.format(candidates=" UNION ALL ".join(CANDIDATES_OF_A_WORD.format(n=n) for n in range(words)))


def most_similar(words: list[str], since: datetime, requester: str, per_word: int, threshold: float,
                 size: int) -> tuple[int, int | None, str] | None:
    """(ticket id, incident id, ref) of the active ticket of another requester than `requester`,
    among the `per_word` newest since `since` that have each of `words`, whose words are most like
    ours (`size` of them) with a Jaccard score of at least `threshold`; one already in an incident
    preferred at equal score, the newest at equal everything. None if none is that similar."""
    since_value = TicketWord.created_at.db_value(since)
    params: list = []
    for word in words:
        params += [word, since_value, requester, per_word]
    row = database.execute_sql(most_similar_sql(len(words)), [*params, threshold, size, size]).fetchone()
    return tuple(row) if row else None


def incidents(incident_ids: list[int]) -> list[tuple[int, int, int | None, list[str] | None]]:
    """(id, customers, primary ticket id, incident-wide rules fired) of these incidents."""
    found = database.execute_sql(INCIDENTS.format(marks=marks(len(incident_ids))), incident_ids).fetchall()
    read = Incident.rules_fired.python_value
    return [(incident_id, customers, primary_id, read(fired)) for incident_id, customers, primary_id, fired in found]


def join_times(incident_ids: list[int]) -> list[tuple[int, datetime]]:
    """(incident id, when a customer joined it) of every customer of these incidents, in no order."""
    found = database.execute_sql(JOIN_TIMES.format(marks=marks(len(incident_ids))), incident_ids).fetchall()
    read = IncidentCustomer.joined_at.python_value
    return [(incident_id, read(joined_at)) for incident_id, joined_at in found]


# A ticket joined: the count of customers (`new` is 1 for a customer not counted yet, else 0), and
# who speaks for the incident since when, in the same statement
COUNT_TICKET = ('UPDATE "incident" SET "customers" = "customers" + ?, "last_ticket_at" = ? WHERE "id" = ? '
                'RETURNING "customers", "primary_ticket_id", '
                '(SELECT t."created_at" FROM "ticket" t WHERE t."id" = "incident"."primary_ticket_id")')
PRIMARY = 'SELECT "primary_ticket_id" FROM "incident" WHERE "id" = ?'
SET_PRIMARY = 'UPDATE "incident" SET "primary_ticket_id" = ? WHERE "id" = ?'


def count_ticket(incident_id: int, new_customer: bool, now: datetime) -> tuple[int, int | None, datetime | None]:
    """A ticket joined the incident at `now`: (customers now, primary ticket id, its created_at)."""
    customers, primary_id, primary_created = database.execute_sql(
        COUNT_TICKET, [int(new_customer), Incident.last_ticket_at.db_value(now), incident_id]).fetchone()
    return customers, primary_id, Ticket.created_at.python_value(primary_created)


def primary(incident_id: int) -> tuple[int | None] | None:
    """(the id of the ticket that speaks for the incident, or None,); None when there is no such incident."""
    row = database.execute_sql(PRIMARY, [incident_id]).fetchone()
    return (row[0],) if row else None


def set_primary(incident_id: int, ticket_id: int | None) -> None:
    database.execute_sql(SET_PRIMARY, [ticket_id, incident_id])
