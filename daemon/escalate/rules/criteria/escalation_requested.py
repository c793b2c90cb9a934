"""escalation_requested: an agent asked for the ticket to be escalated (#escalate or the CLI)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules.registry import criterion, show

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


@criterion("escalation_requested", "An agent explicitly asked for escalation (#escalate).")
class EscalationRequested:
    timed = False

    def parse(self, value: object) -> Any:
        if value is not True:
            raise ValueError(f"expected true, got {show(value)}")
        return True

    def holds_from(self, facts: TicketFacts, _wanted: Any, ruleset: Ruleset) -> datetime | None:
        if facts.is_done or facts.escalation_requested_at is None:
            return None
        # From the moment of the request, so its escalation step has a due time of its own.
        return facts.escalation_requested_at

    def describe(self, _wanted: Any) -> str:
        return "escalation requested by an agent"
