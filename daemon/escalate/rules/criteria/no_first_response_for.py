"""no_first_response_for: no agent has answered this long after the ticket was opened."""

from __future__ import annotations

from .. import clocks
from ..durations import format_duration, parse_duration
from ..registry import criterion


@criterion("no_first_response_for", "No agent has answered this long (business time) after the ticket was opened.")
class NoFirstResponseFor:
    timed = True
    clock = "first response"

    def parse(self, value):
        return parse_duration(value)

    def clock_start(self, facts):
        if facts.first_response_at is not None or facts.is_done:
            return None
        return facts.created_at

    def holds_from(self, facts, duration, ruleset):
        start = self.clock_start(facts)
        return None if start is None else clocks.due(facts, ruleset, start, duration)

    def describe(self, duration):
        return f"no first response for {format_duration(duration)}"
