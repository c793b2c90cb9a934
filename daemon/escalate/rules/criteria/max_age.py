"""max_age: the ticket is still not resolved this long after it was opened, in real time.

Unlike the business-time clocks this one never pauses: "close every escalation within 30 days"
is a promise in calendar days.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules.durations import format_duration, parse_duration
from escalate.rules.registry import criterion

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


@criterion("max_age", "The ticket is older than this (real time, never paused) and not resolved.")
class MaxAge:
    timed = True
    clock = "age"

    def parse(self, value: object) -> Any:
        return parse_duration(value)

    def clock_start(self, facts: TicketFacts) -> datetime | None:
        return None if facts.is_done else facts.created_at

    def holds_from(self, facts: TicketFacts, duration: Any, ruleset: Ruleset) -> datetime | None:
        return None if facts.is_done else facts.created_at + duration

    def describe(self, duration: Any) -> str:
        return f"older than {format_duration(duration)}"
