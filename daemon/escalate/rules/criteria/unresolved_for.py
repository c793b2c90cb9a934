"""unresolved_for: the ticket has been open this long without being resolved or closed."""

from __future__ import annotations

from ..durations import format_duration, parse_duration
from ..registry import criterion


@criterion("unresolved_for", "The ticket has not been resolved or closed this long after it was opened.")
class UnresolvedFor:
    timed = True

    def parse(self, value):
        return parse_duration(value)

    def holds_from(self, facts, duration, ruleset):
        if facts.is_done:
            return None
        return facts.created_at + duration

    def describe(self, duration):
        return f"unresolved for {format_duration(duration)}"
