"""severity: the ticket's severity is one of these (a name or a list of names)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules.facts import ALWAYS
from escalate.rules.registry import criterion, did_you_mean, show

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset


def parse_names(value: object, what: str) -> tuple[str, ...]:
    """A name or a non-empty list of names, as a tuple; ValueError says what was expected."""
    expected = f"expected a {what} name or a list of {what} names, got {show(value)}"
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ValueError(expected)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(expected)
    return tuple(name.strip() for name in names)


@criterion("severity", "The ticket's severity is one of these.")
class Severity:
    timed = False

    def parse(self, value: object) -> Any:
        return parse_names(value, "severity")

    def check(self, names: Any, ruleset: Ruleset) -> Iterator[str]:
        known = [severity.name for severity in ruleset.severities]
        for name in names:
            if name not in known:
                yield f'unknown severity "{name}"{did_you_mean(name, known)} (defined: {", ".join(known)})'

    def holds_from(self, facts: TicketFacts, names: Any, ruleset: Ruleset) -> datetime | None:
        return ALWAYS if facts.severity in names else None

    def describe(self, names: Any) -> str:
        return "severity " + " or ".join(names)
