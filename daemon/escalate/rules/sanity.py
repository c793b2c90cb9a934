"""Checks of whole rules once every part is valid: a rule that can never fire, rules that overlap.

`never_fires` probes a rule with a grid of typical tickets (every status, severity, tier, with and
without a first response, acknowledged or not, in an incident or not): if none of them ever makes
all its criteria hold, the rule is dead text, which is almost always a mistake (status: waiting
with a clock that pauses while waiting; status: resolved with unresolved_for …).

`overlap` finds two rules that would fire at the same moment for the same tickets and so mail
twice about one thing: the same criteria, the same times, and value sets that intersect.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from escalate.rules.facts import STATUSES, TicketFacts

if TYPE_CHECKING:
    from escalate.rules.model import Rule, Ruleset


@dataclass(frozen=True)
class IncidentPolicy:
    """Tickets with similar subjects from distinct senders within `window` form one incident."""

    window: timedelta
    similarity: float  # 0..1: the share of subject words two tickets must have in common


_T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)  # a Monday morning
_H = timedelta(hours=1)


_BIG_INCIDENT = tuple(_T0 + i * _H / 1000 for i in range(1000))  # as many customers as a rule may ask for


def probe_facts(ruleset: Ruleset) -> list[TicketFacts]:
    """The grid of typical tickets `never_fires` tries: built once per ruleset (about 2,000 tickets), not
    once per rule — rebuilding it per rule was most of the time a rules file took to load."""
    severities = [s.name for s in ruleset.severities]
    tiers = [None] + [t.level for t in ruleset.tiers]
    conversations = [  # (first_response_at, last_customer_message_at, last_agent_message_at)
        (None, _T0, None),
        (_T0 + _H, _T0 + 2 * _H, _T0 + _H),  # answered once; the customer wrote again
        (_T0 + _H, _T0, _T0 + _H),  # answered, nothing new from the customer
    ]
    facts = []
    for status, severity, tier, talk, acknowledged, requested, incident in itertools.product(
            STATUSES, severities, tiers, conversations, (False, True), (False, True), (False, True)):
        facts.append(TicketFacts(
            status=status, severity=severity, tier=tier, created_at=_T0, first_response_at=talk[0],
            last_customer_message_at=talk[1], last_agent_message_at=talk[2], acknowledged=acknowledged,
            waiting_since=_T0 + 3 * _H if status == "waiting" else None,
            escalation_requested_at=_T0 + _H if requested else None,
            incident_joins=_BIG_INCIDENT if incident else (),
        ))
    return facts


def never_fires(rule: Rule, ruleset: Ruleset, probes: list[TicketFacts]) -> str | None:
    """Why none of `probes` (the ruleset's `probe_facts`) satisfies all of the rule's criteria at once, or
    None if one does."""
    for facts in probes:
        if rule.fires_at(facts, ruleset) is not None:
            return None
    described = ", ".join(f'"{bound.describe()}"' for bound in rule.criteria)
    return (f"this rule can never fire: no ticket meets {described} at the same time"
            if len(rule.criteria) > 1 else f"this rule can never fire: no ticket meets {described}")


def _intersects(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple):
        return bool(set(a) & set(b))
    return bool(a == b)


def overlap(earlier: Rule, later: Rule, earlier_nodes: Any = None) -> str | None:
    """A message when `later` fires exactly when `earlier` does, for the same tickets."""
    if earlier.escalate_to is None or later.escalate_to is None:
        return None  # an action-only rule beside a notifying one is a deliberate pairing
    mine = {bound.name: bound for bound in later.criteria}
    theirs = {bound.name: bound for bound in earlier.criteria}
    if mine.keys() != theirs.keys():
        return None
    for name, bound in mine.items():
        other = theirs[name]
        if bound.timed and bound.value != other.value:
            return None
        if not bound.timed and not _intersects(bound.value, other.value):
            return None
    line = f" (line {earlier_nodes.name.start_mark.line + 1})" if earlier_nodes is not None else ""
    shared = ", ".join(bound.describe() for bound in later.criteria)
    return (f'overlaps rule "{earlier.name}"{line}: both fire at the same moment for the same tickets '
            f"({shared}); merge them or make their criteria differ")
