"""no_first_response_for: no agent has answered this long after the ticket was opened."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules import clocks
from escalate.rules.durations import format_duration, parse_duration
from escalate.rules.registry import criterion

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


@criterion("no_first_response_for", "No agent has answered this long (business time) after the ticket was opened.")
class NoFirstResponseFor:
    timed = True
    clock = "first response"

    def parse(self, value: object) -> Any:
        return parse_duration(value)

    def clock_start(self, facts: TicketFacts) -> datetime | None:
        if facts.first_response_at is not None or facts.is_done:
            return None
        return facts.created_at

    def holds_from(self, facts: TicketFacts, duration: Any, ruleset: Ruleset) -> datetime | None:
        start = self.clock_start(facts)
        return None if start is None else clocks.due(facts, ruleset, start, duration)

    def describe(self, duration: Any) -> str:
        return f"no first response for {format_duration(duration)}"
