"""ask_consulted: ask the tier's consulted departments for input (external escalation)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from escalate.rules.actions._tier import escalation_tier
from escalate.rules.registry import action, show

if TYPE_CHECKING:
    from escalate.rules.effects import Effects
    from escalate.rules.model import Ruleset


@action("ask_consulted", "Ask the tier's consulted departments for input (true: all; or a list of names).")
class AskConsulted:
    def parse(self, value: object) -> Any:
        if value is True:
            return None
        names = [value] if isinstance(value, str) else value
        if isinstance(names, list) and names and all(isinstance(n, str) and n.strip() for n in names):
            return tuple(n.strip() for n in names)
        raise ValueError(f"expected true or a list of consulted department names, got {show(value)}")

    def check(self, names: Any, ruleset: Ruleset, then: dict[str, Any]) -> Iterator[str]:
        tier = yield from escalation_tier(
            ruleset, then, "ask_consulted needs escalate_to: the departments are the ones that tier consults")
        if tier is None:
            return
        known = [name for name, _address in tier.consulted]
        if not known:
            yield f"tier {tier.level} ({tier.name}) lists no consulted departments"
        for name in names or ():
            if name not in known:
                yield f'tier {tier.level} does not consult "{name}" (consulted: {", ".join(known) or "none"})'

    def run(self, effects: Effects, names: Any) -> int:
        queued = 0
        tier = effects.tier
        assert tier is not None  # check() refuses `ask_consulted` without escalate_to
        for name, address in tier.consulted:
            if names is None or name in names:
                effects.audit("consulted", department=name, to=address)
                queued += effects.ask_for_input(name, address, f"{effects.rule.description or effects.rule.name} "
                                                               f"({effects.breached()}). What do you advise?")
        return queued

    def describe(self, names: Any) -> str:
        return "ask the consulted departments" if names is None else "ask " + ", ".join(names)
