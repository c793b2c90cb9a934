"""no_update_for: no agent has written on an open ticket for this long."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules import clocks
from escalate.rules.durations import format_duration, parse_duration
from escalate.rules.registry import criterion

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


@criterion("no_update_for", "No agent has written for this long (business time, since the last agent message or since opening).")
class NoUpdateFor:
    timed = True
    clock = "update"

    def parse(self, value: object) -> Any:
        return parse_duration(value)

    def clock_start(self, facts: TicketFacts) -> datetime | None:
        if facts.is_done:
            return None
        since = facts.created_at
        if facts.last_agent_message_at is not None and facts.last_agent_message_at > since:
            since = facts.last_agent_message_at
        return since

    def holds_from(self, facts: TicketFacts, duration: Any, ruleset: Ruleset) -> datetime | None:
        # Waiting on the customer pauses this clock: silence is then the customer's, not ours.
        start = self.clock_start(facts)
        return None if start is None else clocks.due(facts, ruleset, start, duration)

    def describe(self, duration: Any) -> str:
        return f"no update for {format_duration(duration)}"
