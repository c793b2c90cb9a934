"""What a rule action may do when its rule fires on a ticket. The rules decide; the engine acts:
an action (actions/) is handed an `Effects` and changes the world only through it, and the engine
implements it (engine.StepContext: mail queued in the tick's batch, the ticket's severity set
through the state machine, audit events). So nothing in rules/ imports the modules that queue
mail or change tickets (tests/qa/test_rules_imports.py)."""

from __future__ import annotations

from typing import Any, Protocol

from escalate.rules.model import Rule, Ruleset, Tier


class Effects(Protocol):
    rule: Rule  # the rule that fired
    ruleset: Ruleset
    tier: Tier | None  # the rule's tier, when the rule notifies one

    def breached(self) -> str:
        """What the rule's criteria say was missed, in words ("no first response for 15m")."""

    def audit(self, action: str, **detail: Any) -> None:
        """Record an audit event on the ticket, by the rule."""

    def alert_lead(self, tier: Tier) -> bool:
        """Queue the breach alert to `tier`'s lead; False when none was queued (no lead, or sent already)."""

    def ask_for_input(self, department: str, address: str, question: str) -> bool:
        """Queue a request for input to a consulted department; False when none was queued."""

    def set_severity(self, severity: str) -> None:
        """Set the ticket's severity (an incident rule: every active ticket of its incident)."""
