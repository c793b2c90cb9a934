"""past_target: the ticket is past its severity's first-response, next-response or resolution target."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from escalate.rules import clocks
from escalate.rules.registry import criterion, did_you_mean, show

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset, Severity

TARGETS = ("first_response", "next_response", "resolution")


def target_clock_start(facts: TicketFacts, target: str | None) -> datetime | None:
    """When the clock of `target` started for this ticket, or None when it does not run."""
    if facts.is_done:
        return None
    if target == "first_response":
        return facts.created_at if facts.first_response_at is None else None
    if target == "next_response":
        # Runs from a customer message that no agent has answered yet, once the first response is in.
        if facts.first_response_at is None or facts.last_customer_message_at is None:
            return None
        if facts.last_agent_message_at is not None and facts.last_agent_message_at >= facts.last_customer_message_at:
            return None
        return facts.last_customer_message_at
    return facts.created_at


@criterion("past_target", "The ticket is past its severity's first_response, next_response or resolution target.")
class PastTarget:
    timed = True

    def parse(self, value: object) -> Any:
        if not isinstance(value, str) or value not in TARGETS:
            hint = did_you_mean(value, TARGETS) if isinstance(value, str) else ""
            raise ValueError(f'expected "first_response", "next_response" or "resolution", got {show(value)}{hint}')
        return value

    def check(self, target: Any, ruleset: Ruleset) -> Iterator[str]:
        if ruleset.severities and all(getattr(s, target) is None for s in ruleset.severities):
            yield f"no severity has a {target} target, so this never holds"

    def severity(self, facts: TicketFacts, ruleset: Ruleset) -> Severity:
        try:
            return ruleset.severity(facts.severity)
        except KeyError:
            # The ticket's severity was removed from rules.yaml since it was opened: hold it to
            # the default severity's targets rather than let it drop off every clock.
            return ruleset.default_severity

    def limit(self, facts: TicketFacts, target: str, ruleset: Ruleset) -> timedelta | None:
        limit: timedelta | None = getattr(self.severity(facts, ruleset), target)
        return limit

    def holds_from(self, facts: TicketFacts, target: Any, ruleset: Ruleset) -> datetime | None:
        start = target_clock_start(facts, target)
        limit = self.limit(facts, target, ruleset)
        if start is None or limit is None:
            return None
        return clocks.due(facts, ruleset, start, limit)

    def describe(self, target: Any) -> str:
        return f"past the {target.replace('_', ' ')} target"
