"""Impact on several customers: similar tickets from distinct senders within a window are linked
under one incident, so a rule can raise its severity and escalate it once, not per ticket.

Similarity is the share of subject words two tickets have in common (Jaccard over the words of
the normalised subjects, short and common words left out); the window and the threshold come
from the `incidents:` section of rules.yaml. Ingest calls `link_new_ticket` in the transaction
that opens the ticket.

What a mail storm costs stays the same per mail, however large the storm (hundreds of customers
reporting ten outages within the hour):
- each ticket's subject words are stored once (`TicketWord`), and a new ticket reads, for each of
  its words, only the most recent tickets in the window that share it — their id and incident,
  never their models or subjects;
- an incident keeps its own facts: one row per distinct customer with when it joined
  (`IncidentCustomer`) and its primary ticket, so evaluating a ticket reads those, not its members
  (`incident_facts`, and `incident_facts_many` for a tick batch), and joining costs one insert
  (tickets.join_incident).
"""

from __future__ import annotations

import weakref
from datetime import datetime
from typing import Iterable, NamedTuple

from escalate.rules.model import Ruleset
from escalate.mail.subjects import ticket_words
from escalate.store import incidents as store_incidents
from escalate.store import rows
from escalate.store.batch import Batch
from escalate.store.models import Incident, Ticket, TicketWord, database
from escalate.tickets import lifecycle as tickets

# For each word of a new ticket, the most recent tickets sharing it that are looked at: bounds the
# cost per mail in a storm. A similar ticket shares several words, so it is found under one of them
# unless each word it shares came in that many newer tickets of other customers since. In a storm
# those are mostly reports of the same problem, found in the first, shallow look; a ticket that
# finds nothing similar there looks again, deeper (a rare word's list is short either way).
PER_WORD = (6, 60)
MAX_WORDS = 12  # a long subject is looked up by its longest words (its score still counts them all)
def link_new_ticket(ticket: Ticket, ruleset: Ruleset, now: datetime, batch: Batch | None = None) -> int | None:
    """Index the new `ticket`'s subject words and link it with a similar recent ticket from another
    customer, under one incident.

    Returns the incident's id, or None when incidents are off or nothing similar came in the window.
    """
    policy = ruleset.incidents
    if policy is None:
        return None
    words = ticket_words(ticket.normalised_subject, ticket.subject)
    if not words:
        return None
    best = _most_similar(ticket, words, ticket.created_at - policy.window, policy.similarity)
    index_words(ticket.id, words, ticket.created_at)  # after the look-up: a ticket is not its own candidate
    if best is None:
        return None
    best_id, incident_id, best_ref = best
    forget_joins()  # this transaction adds a customer, and may yet roll back
    if incident_id is None:
        best_ticket = rows.get_by_id(Ticket, best_id)
        incident_id = rows.create(Incident, subject=best_ticket.subject, created_at=now, last_ticket_at=now,
                                  customers=0).id
        tickets.join_incident(best_ticket, incident_id, now, similar_to=ticket.ref, batch=batch)
    tickets.join_incident(ticket, incident_id, now, similar_to=best_ref, batch=batch)
    return incident_id


def index_words(ticket_id: int, words: Iterable[str], created_at: datetime) -> None:
    words = list(words)
    rows.insert_many(TicketWord, [{"word": word, "ticket": ticket_id, "created_at": created_at,
                                   "word_count": len(words)} for word in words])


def _most_similar(ticket: Ticket, words: frozenset[str], since: datetime,
                  threshold: float) -> tuple[int, int | None, str] | None:
    """(id, incident id, ref) of the most similar active ticket of another customer since `since`, one
    already in an incident preferred at equal score, the newest at equal everything; or None.
    Scored and chosen in SQL: a storm's candidates never come back to Python one by one."""
    looked_up = sorted(words, key=lambda w: (-len(w), w))[:MAX_WORDS]
    for depth in PER_WORD:
        found = store_incidents.most_similar(looked_up, since, ticket.requester, depth, threshold, len(words))
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------------------------------------
# what the rules read about a ticket's incident


class IncidentFacts(NamedTuple):
    """What the rules read of a ticket's incident (rules/facts.py)."""

    joins: tuple[datetime, ...]  # when each distinct customer joined, in order
    primary: bool  # the ticket speaks for the incident: its incident-wide rules act
    rules_fired: frozenset[str] = frozenset()  # incident-wide rules that acted for it already (rules/ladder.py)


NO_INCIDENT = IncidentFacts((), True)


def incident_facts(ticket: Ticket) -> IncidentFacts:
    """When each distinct customer joined the ticket's incident (in order), whether the ticket
    is the incident's primary (the one whose rules act on it), and which incident-wide rules acted
    already; ((), True, {}) outside an incident."""
    if ticket.incident_id is None:
        return NO_INCIDENT
    return incident_facts_many([ticket])[ticket.id]


def incident_facts_many(batch: Iterable[Ticket]) -> dict[int, IncidentFacts]:
    """`incident_facts` for a batch of tickets, by ticket id: one query for the incidents' rows, and
    one more for the join times of those whose customers changed since this process last read them."""
    batch = list(batch)
    incident_ids = sorted({t.incident_id for t in batch if t.incident_id is not None})
    primaries: dict[int, int | None] = {}
    fired: dict[int, frozenset[str]] = {}
    stale: list[int] = []
    joins = _joins_known()
    if incident_ids:
        for incident_id, customers, primary_id, rules_fired in store_incidents.incidents(incident_ids):
            primaries[incident_id] = primary_id
            fired[incident_id] = frozenset(rules_fired or ())
            cached = joins.get(incident_id)
            if cached is None or len(cached) != customers:
                stale.append(incident_id)
    if stale:
        _read_joins(joins, stale)
    facts: dict[int, IncidentFacts] = {}
    for ticket in batch:
        if ticket.incident_id is None or ticket.incident_id not in primaries:
            facts[ticket.id] = NO_INCIDENT  # (an incident that is gone: its tickets' link goes with it)
        else:
            facts[ticket.id] = IncidentFacts(joins.get(ticket.incident_id, ()), primaries[ticket.incident_id] == ticket.id,
                                             fired[ticket.incident_id])
    return facts


# An incident's join times, as this process last read them from the database bound now. Customers
# are only ever added (one row each), and every addition raises the incident's `customers`: a kept
# tuple as long as that count is current, so a tick over a storm's thousands of tickets reads each
# incident's joins once, not once per ticket. This process's own joins (link_new_ticket) drop what
# it keeps, lest a join its transaction then rolls back be kept.
_JOINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # database -> {incident id: join times}
_JOINS_KEPT = 1000  # incidents remembered; past that the memory starts afresh


def _joins_known() -> dict[int, tuple[datetime, ...]]:
    return _JOINS.setdefault(database.obj, {})


def _read_joins(joins: dict[int, tuple[datetime, ...]], incident_ids: list[int]) -> None:
    if len(joins) + len(incident_ids) > _JOINS_KEPT:
        joins.clear()
    found: dict[int, list[datetime]] = {incident_id: [] for incident_id in incident_ids}
    for incident_id, joined_at in store_incidents.join_times(incident_ids):
        found[incident_id].append(joined_at)
    for incident_id, times in found.items():
        joins[incident_id] = tuple(sorted(times))


def forget_joins() -> None:
    _joins_known().clear()


def incident_summary(incident: Incident) -> dict:
    members = list(Ticket.select().where(Ticket.incident == incident).order_by(Ticket.created_at, Ticket.id))
    return {"id": incident.id, "subject": incident.subject, "customers": incident.customers,
            "tickets": [t.ref for t in members], "created_at": incident.created_at.isoformat()}
