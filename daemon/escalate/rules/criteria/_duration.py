"""The duration criteria (`max_age: 30d`, `no_update_for: 4h`, …), made by one factory.

Each holds once a clock of the ticket has run the rule's duration. They differ only in when that
clock starts (and whether it runs at all), and whether it counts the business time of the
ticket's calendar, paused while the ticket waits on the customer, or real time that never pauses;
each criterion's file declares those with `duration_criterion(...)`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from escalate.rules import clocks
from escalate.rules.durations import format_duration, parse_duration
from escalate.rules.facts import TicketFacts
from escalate.rules.registry import criterion

if TYPE_CHECKING:
    from escalate.rules.model import Ruleset

ClockStart = Callable[[TicketFacts], "datetime | None"]


def since_opened(facts: TicketFacts) -> datetime | None:
    """The clock that runs from the ticket's creation until it is resolved or closed."""
    return None if facts.is_done else facts.created_at


class DurationCriterion:
    """`name: <duration>`: holds from the moment the clock started at `start(facts)` has run the
    duration (never while `start` gives None)."""

    timed = True

    def __init__(self, start: ClockStart, phrase: str, business_time: bool) -> None:
        self.clock_start = start
        self.phrase = phrase  # what `describe` puts before the duration: "no update for"
        self.business_time = business_time

    def parse(self, value: object) -> Any:
        return parse_duration(value)

    def holds_from(self, facts: TicketFacts, duration: timedelta, ruleset: Ruleset) -> datetime | None:
        start = self.clock_start(facts)
        if start is None:
            return None
        if not self.business_time:
            return start + duration
        return clocks.due(facts, ruleset, start, duration)

    def describe(self, duration: timedelta) -> str:
        return f"{self.phrase} {format_duration(duration)}"


def duration_criterion(name: str, description: str, *, start: ClockStart, phrase: str,
                       business_time: bool = True) -> DurationCriterion:
    """Register the duration criterion `name` (its `description` is its line in `rules doc`)."""
    return criterion(name, description)(DurationCriterion(start, phrase, business_time))
