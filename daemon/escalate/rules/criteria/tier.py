"""tier: the ticket has reached one of these escalation tiers (a level or a list of levels)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules.facts import ALWAYS
from escalate.rules.registry import criterion, show

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


@criterion("tier", "The ticket's current escalation tier is one of these levels.")
class TierIs:
    timed = False

    def parse(self, value: object) -> Any:
        levels = [value] if not isinstance(value, list) else value
        if not levels or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in levels):
            raise ValueError(f"expected a tier level or a list of levels, got {show(value)}")
        return tuple(levels)

    def check(self, levels: Any, ruleset: Ruleset) -> Iterator[str]:
        known = {tier.level for tier in ruleset.tiers}
        for level in levels:
            if known and level not in known:
                yield f"no tier has level {level} (levels: {', '.join(str(k) for k in sorted(known))})"

    def holds_from(self, facts: TicketFacts, levels: Any, ruleset: Ruleset) -> datetime | None:
        return ALWAYS if facts.tier in levels else None

    def describe(self, levels: Any) -> str:
        return "at tier " + " or ".join(str(level) for level in levels)
