"""alert_lead: tell the accountable lead of a tier that this ticket breached (true: the rule's tier)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..registry import action, show

if TYPE_CHECKING:
    from ..model import Ruleset


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

    def level(self, step: Any, level: int | None) -> int:
        return level if level is not None else step.rule.escalate_to

    def run(self, step: Any, level: Any) -> int:
        tier = step.ruleset.tier(self.level(step, level))
        from ...notify import queue_breach_alert

        step.audit("lead-alerted", to=tier.lead, tier=tier.level)
        row = queue_breach_alert(ticket=step.ticket, rule=step.rule, tier=tier, breached=step.breached(),
                                 due_at=step.due_at, ruleset=step.ruleset, renderer=step.renderer,
                                 secret=step.secret, now=step.now, step=step.step)
        return 1 if row is not None else 0

    def describe(self, level: Any) -> str:
        return "alert the lead" if level is None else f"alert the lead of tier {level}"
