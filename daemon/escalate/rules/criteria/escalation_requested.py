"""escalation_requested: an agent asked for the ticket to be escalated (#escalate or the CLI)."""

from __future__ import annotations

from ..registry import criterion, show


@criterion("escalation_requested", "An agent explicitly asked for escalation (#escalate).")
class EscalationRequested:
    timed = False

    def parse(self, value):
        if value is not True:
            raise ValueError(f"expected true, got {show(value)}")
        return True

    def holds_from(self, facts, _wanted, ruleset):
        if facts.is_done or facts.escalation_requested_at is None:
            return None
        # From the moment of the request, so its escalation step has a due time of its own.
        return facts.escalation_requested_at

    def describe(self, _wanted):
        return "escalation requested by an agent"
