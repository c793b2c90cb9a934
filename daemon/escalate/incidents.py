"""Impact on several customers: similar tickets from distinct senders within a window are linked
under one incident, so a rule can raise its severity and escalate it once, not per ticket.

Similarity is the share of subject words two tickets have in common (Jaccard over the words of
the normalised subjects, short and common words left out); the window and the threshold come
from the `incidents:` section of rules.yaml. Ingest calls `link_new_ticket` in the transaction
that opens the ticket.
"""

from __future__ import annotations

import re
from datetime import datetime

from . import tickets
from .models import ACTIVE_STATUSES, Incident, Ticket
from .rules.model import Ruleset

CANDIDATES = 500  # recent tickets compared per new ticket: bounds the cost in a mail storm
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_COMMON = frozenset("the and for with from our your you are not can cannot has have this that was were any all "
                    "re fwd fw aw sv please help issue problem".split())


def subject_words(subject: str) -> frozenset[str]:
    """The words that say what a subject is about: lowercased, 3+ letters, common words left out."""
    return frozenset(w for w in _WORD.findall((subject or "").lower()) if len(w) >= 3 and w not in _COMMON)


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


def link_new_ticket(ticket: Ticket, ruleset: Ruleset, now: datetime) -> Incident | None:
    """Link `ticket` with a similar recent ticket from another customer, under one incident.

    Returns the incident, or None when incidents are off or nothing similar came in the window.
    """
    policy = ruleset.incidents
    if policy is None:
        return None
    words = subject_words(ticket.normalised_subject or ticket.subject)
    if not words:
        return None
    recent = (Ticket.select().where((Ticket.created_at >= ticket.created_at - policy.window)
                                    & (Ticket.id != ticket.id) & (Ticket.requester != ticket.requester)
                                    & Ticket.status.in_(ACTIVE_STATUSES))
              .order_by(Ticket.created_at.desc()).limit(CANDIDATES))
    best, best_score = None, 0.0
    for candidate in recent:
        score = similarity(words, subject_words(candidate.normalised_subject or candidate.subject))
        # prefer a candidate already in an incident, so one problem stays one incident
        if score >= policy.similarity and (score, candidate.incident_id is not None) > (best_score, False):
            best, best_score = candidate, score
    if best is None:
        return None
    incident = best.incident if best.incident_id is not None else None
    if incident is None:
        incident = Incident.create(subject=best.subject, created_at=now, last_ticket_at=now, customers=1)
        tickets.join_incident(best, incident, now, similar_to=ticket.ref)
    tickets.join_incident(ticket, incident, now, similar_to=best.ref)
    incident.customers = (Ticket.select(Ticket.requester).where(Ticket.incident == incident).distinct().count())
    incident.last_ticket_at = now
    incident.save()
    return incident


def incident_summary(incident: Incident) -> dict:
    members = list(Ticket.select().where(Ticket.incident == incident).order_by(Ticket.created_at, Ticket.id))
    return {"id": incident.id, "subject": incident.subject, "customers": incident.customers,
            "tickets": [t.ref for t in members], "created_at": incident.created_at.isoformat()}
