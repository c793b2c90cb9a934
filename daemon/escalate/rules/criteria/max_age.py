"""max_age: the ticket is still not resolved this long after it was opened, in real time.

Unlike the business-time clocks this one never pauses: "close every escalation within 30 days"
is a promise in calendar days.
"""

from __future__ import annotations

from ..durations import format_duration, parse_duration
from ..registry import criterion


@criterion("max_age", "The ticket is older than this (real time, never paused) and not resolved.")
class MaxAge:
    timed = True
    clock = "age"

    def parse(self, value):
        return parse_duration(value)

    def clock_start(self, facts):
        return None if facts.is_done else facts.created_at

    def holds_from(self, facts, duration, ruleset):
        return None if facts.is_done else facts.created_at + duration

    def describe(self, duration):
        return f"older than {format_duration(duration)}"
