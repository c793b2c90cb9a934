"""no_update_for: no agent has written on an open ticket for this long."""

from __future__ import annotations

from ..durations import format_duration, parse_duration
from ..registry import criterion

# Waiting on the customer pauses this clock: silence is then the customer's, not ours.
_PAUSED = frozenset({"resolved", "closed", "waiting"})


@criterion("no_update_for", "No agent has written for this long (since the last agent message, or since opening).")
class NoUpdateFor:
    timed = True

    def parse(self, value):
        return parse_duration(value)

    def holds_from(self, facts, duration, ruleset):
        if facts.status in _PAUSED:
            return None
        since = facts.created_at
        if facts.last_agent_message_at is not None and facts.last_agent_message_at > since:
            since = facts.last_agent_message_at
        return since + duration

    def describe(self, duration):
        return f"no update for {format_duration(duration)}"
