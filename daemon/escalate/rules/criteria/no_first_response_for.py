"""no_first_response_for: no agent has answered this long after the ticket was opened."""

from __future__ import annotations

from datetime import datetime

from escalate.rules.criteria._duration import duration_criterion
from escalate.rules.facts import TicketFacts


def until_first_response(facts: TicketFacts) -> datetime | None:
    """From the ticket's creation until an agent answers (or it is resolved or closed)."""
    if facts.first_response_at is not None or facts.is_done:
        return None
    return facts.created_at


NO_FIRST_RESPONSE_FOR = duration_criterion(
    "no_first_response_for", "No agent has answered this long (business time) after the ticket was opened.",
    start=until_first_response, phrase="no first response for")
