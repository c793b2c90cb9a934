"""status: the ticket's status is one of these (a status or a list of statuses)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules.criteria.severity import parse_names
from escalate.rules.facts import ALWAYS, STATUSES
from escalate.rules.registry import criterion, did_you_mean

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


@criterion("status", "The ticket's status is one of these (new, open, waiting, resolved, closed).")
class Status:
    timed = False

    def parse(self, value: object) -> Any:
        names = parse_names(value, "status")
        for name in names:
            if name not in STATUSES:
                raise ValueError(
                    f'unknown status "{name}"{did_you_mean(name, STATUSES)} (statuses: {", ".join(STATUSES)})'
                )
        return names

    def holds_from(self, facts: TicketFacts, names: Any, ruleset: Ruleset) -> datetime | None:
        return ALWAYS if facts.status in names else None

    def describe(self, names: Any) -> str:
        return "status " + " or ".join(names)
