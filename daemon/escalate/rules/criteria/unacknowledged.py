"""unacknowledged: nobody has acknowledged the ticket's escalation (true), or somebody has (false)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules.facts import ALWAYS
from escalate.rules.registry import criterion, show

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


@criterion("unacknowledged", "Nobody has acknowledged the escalation yet (true), or somebody has (false).")
class Unacknowledged:
    timed = False

    def parse(self, value: object) -> Any:
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {show(value)}")
        return value

    def holds_from(self, facts: TicketFacts, wanted: Any, ruleset: Ruleset) -> datetime | None:
        return ALWAYS if (not facts.acknowledged) == wanted else None

    def describe(self, wanted: Any) -> str:
        return "unacknowledged" if wanted else "acknowledged"
