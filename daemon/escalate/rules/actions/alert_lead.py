"""alert_lead: tell the accountable lead of a tier that this ticket breached (true: the rule's tier)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from escalate.rules.registry import action, show

if TYPE_CHECKING:
    from escalate.rules.effects import Effects
    from escalate.rules.model import Ruleset


@action("alert_lead", "Mail the tier's lead (accountable) that the ticket breached.")
class AlertLead:
    def parse(self, value: object) -> Any:
        if value is True:
            return None  # the rule's own tier
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise ValueError(f"expected true (the rule's tier) or a tier level, got {show(value)}")

    def check(self, level: Any, ruleset: Ruleset, then: dict[str, Any]) -> Iterator[str]:
        level = level if level is not None else then.get("escalate_to")
        if level is None:
            yield "alert_lead: true needs escalate_to (or name the tier: alert_lead: 2)"
            return
        try:
            tier = ruleset.tier(level)
        except KeyError:
            yield f"no tier has level {level}"
            return
        if not tier.group:
            return  # the tier itself is broken and reported already
        if tier.lead is None:
            yield f"tier {level} ({tier.name}) has no lead to alert; add lead: to the tier"

    def level(self, effects: Effects, level: int | None) -> int:
        chosen = level if level is not None else effects.rule.escalate_to
        assert chosen is not None  # check() refuses `alert_lead: true` without escalate_to
        return chosen

    def run(self, effects: Effects, level: int | None) -> int:
        tier = effects.ruleset.tier(self.level(effects, level))
        effects.audit("lead-alerted", to=tier.lead, tier=tier.level)
        return 1 if effects.alert_lead(tier) else 0

    def describe(self, level: Any) -> str:
        return "alert the lead" if level is None else f"alert the lead of tier {level}"
