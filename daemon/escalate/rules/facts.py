"""What criteria read: a plain snapshot of one ticket, built by the engine from its row.

Criteria never touch the database, so `rules simulate` and the unit tests can hand them facts
directly (data first: facts are plain values).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

STATUSES = ("new", "open", "waiting", "resolved", "closed")
# A ticket in one of these states needs nothing more from anyone: no clock runs on it.
DONE_STATUSES = frozenset({"resolved", "closed"})

# What `holds_from` returns for a criterion that holds irrespective of time (severity, status …):
# earlier than any real moment, so max() over a rule's criteria picks the time criteria's moment.
ALWAYS = datetime.min.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class TicketFacts:
    """One ticket as the rules see it. All times are aware UTC datetimes."""

    status: str  # new | open | waiting | resolved | closed
    severity: str
    tier: int | None  # current escalation tier, None if never escalated
    created_at: datetime
    first_response_at: datetime | None
    last_customer_message_at: datetime | None
    last_agent_message_at: datetime | None
    acknowledged: bool
    # Periods the ticket waited on the customer, (start, end), oldest first: paused clocks skip them.
    waiting_periods: tuple[tuple[datetime, datetime], ...] = ()
    waiting_since: datetime | None = None  # set while the status is "waiting"
    escalation_requested_at: datetime | None = None  # an agent asked for escalation (#escalate)
    # When each distinct customer of the ticket's incident joined it, in order (empty: no incident).
    incident_joins: tuple[datetime, ...] = ()
    # Whether this ticket speaks for its incident (its first open ticket): incident rules act once.
    incident_primary: bool = True
    # Incident-wide rules that already acted for the ticket's incident (through any of its
    # tickets): they act once per incident, even when its primary ticket changes.
    incident_rules_fired: frozenset[str] = frozenset()

    @property
    def is_done(self) -> bool:
        """Resolved or closed: no clock runs."""
        return self.status in DONE_STATUSES
