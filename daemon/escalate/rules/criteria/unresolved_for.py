"""unresolved_for: the ticket has been open this long without being resolved or closed."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules import clocks
from escalate.rules.durations import format_duration, parse_duration
from escalate.rules.registry import criterion

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


@criterion("unresolved_for", "The ticket has not been resolved or closed this long (business time) after it was opened.")
class UnresolvedFor:
    timed = True
    clock = "resolution"

    def parse(self, value: object) -> Any:
        return parse_duration(value)

    def clock_start(self, facts: TicketFacts) -> datetime | None:
        return None if facts.is_done else facts.created_at

    def holds_from(self, facts: TicketFacts, duration: Any, ruleset: Ruleset) -> datetime | None:
        start = self.clock_start(facts)
        return None if start is None else clocks.due(facts, ruleset, start, duration)

    def describe(self, duration: Any) -> str:
        return f"unresolved for {format_duration(duration)}"
