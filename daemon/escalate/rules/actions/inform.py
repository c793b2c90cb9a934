"""inform: add the ticket to the informed list's digest (a daily summary, not a mail per ticket)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from escalate.rules.registry import action, show

if TYPE_CHECKING:
    from escalate.rules.effects import Effects
    from escalate.rules.model import Ruleset


@action("inform", "Add the ticket to the digest of the tier's informed list.")
class Inform:
    def parse(self, value: object) -> Any:
        if value is True:
            return True
        raise ValueError(f"expected true, got {show(value)}")

    def check(self, _value: Any, ruleset: Ruleset, then: dict[str, Any]) -> Iterator[str]:
        level = then.get("escalate_to")
        try:
            tier = ruleset.tier(level) if level is not None else None
        except KeyError:
            return
        if tier is not None and not tier.group:
            return  # the tier itself is broken and reported already
        if tier is None:
            yield "inform needs escalate_to: the informed list is that tier's"
        elif not tier.informed:
            yield f"tier {tier.level} ({tier.name}) has no informed list"

    def run(self, effects: Effects, _value: Any) -> int:
        # The digest is built from these events (action "digest"), one summary per recipient.
        tier = effects.tier
        assert tier is not None  # check() refuses `inform` without escalate_to
        effects.audit("digest", recipients=list(tier.informed), tier=tier.level)
        return 0

    def describe(self, _value: Any) -> str:
        return "add to the informed digest"
