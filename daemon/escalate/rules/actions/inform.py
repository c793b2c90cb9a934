"""inform: add the ticket to the informed list's digest (a daily summary, not a mail per ticket)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from escalate.rules.actions._tier import escalation_tier
from escalate.rules.registry import action, show

if TYPE_CHECKING:
    from escalate.rules.effects import Effects
    from escalate.rules.model import Ruleset


@action("inform", "Add the ticket to the digest of the tier's informed list.")
class Inform:
    def parse(self, value: object) -> Any:
        if value is not True:
            raise ValueError(f"expected true, got {show(value)}")
        return True

    def check(self, _value: Any, ruleset: Ruleset, then: dict[str, Any]) -> Iterator[str]:
        tier = yield from escalation_tier(ruleset, then, "inform needs escalate_to: the informed list is that tier's")
        if tier is not None and not tier.informed:
            yield f"tier {tier.level} ({tier.name}) has no informed list"

    def run(self, effects: Effects, _value: Any) -> int:
        # The digest is built from these events (action "digest"), one summary per recipient.
        tier = effects.tier
        assert tier is not None  # check() refuses `inform` without escalate_to
        effects.audit("digest", recipients=list(tier.informed), tier=tier.level)
        return 0

    def describe(self, _value: Any) -> str:
        return "add to the informed digest"
