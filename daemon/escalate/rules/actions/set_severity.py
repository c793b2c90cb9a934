"""set_severity: change the ticket's severity (for an incident: every ticket in it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from escalate.rules.registry import action, did_you_mean, show

if TYPE_CHECKING:
    from escalate.rules.effects import Effects
    from escalate.rules.model import Ruleset


@action("set_severity", "Set the ticket's severity (every ticket of its incident, for an incident rule).")
class SetSeverity:
    def parse(self, value: object) -> Any:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"expected a severity name, got {show(value)}")
        return value.strip()

    def check(self, name: Any, ruleset: Ruleset, then: dict[str, Any]) -> Iterator[str]:
        known = [severity.name for severity in ruleset.severities]
        if known and name not in known:
            yield f'unknown severity "{name}"{did_you_mean(name, known)} (defined: {", ".join(known)})'

    def run(self, effects: Effects, name: Any) -> int:
        effects.set_severity(name)
        return 0

    def describe(self, name: Any) -> str:
        return f"set severity {name}"
