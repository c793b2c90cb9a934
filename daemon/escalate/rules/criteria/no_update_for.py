"""no_update_for: no agent has written on an open ticket for this long.

Waiting on the customer pauses this clock (as every business-time clock): silence is then the
customer's, not ours.
"""

from __future__ import annotations

from datetime import datetime

from escalate.rules.criteria._duration import duration_criterion
from escalate.rules.facts import TicketFacts


def since_last_agent_message(facts: TicketFacts) -> datetime | None:
    """From the last agent message (or the ticket's creation) until it is resolved or closed."""
    if facts.is_done:
        return None
    since = facts.created_at
    if facts.last_agent_message_at is not None and facts.last_agent_message_at > since:
        since = facts.last_agent_message_at
    return since


NO_UPDATE_FOR = duration_criterion(
    "no_update_for",
    "No agent has written for this long (business time, since the last agent message or since opening).",
    start=since_last_agent_message, phrase="no update for")
