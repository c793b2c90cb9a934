"""What the actions that act on their rule's tier (inform, ask_consulted) check about it alike."""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from escalate.rules.model import Ruleset, Tier


def escalation_tier(ruleset: Ruleset, then: dict[str, Any], missing: str) -> Generator[str, None, Tier | None]:
    """For an action's check(), as `tier = yield from escalation_tier(...)`: the tier of the rule's
    `escalate_to`, to check the action against; None, after the issue `missing`, when the rule
    has no escalate_to; None without a word when that tier is unknown or broken, as that is
    reported at the tier or at escalate_to already."""
    level = then.get("escalate_to")
    if level is None:
        yield missing
        return None
    try:
        tier = ruleset.tier(level)
    except KeyError:
        return None
    return tier if tier.group else None
