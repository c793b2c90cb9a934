"""The rules as frozen values: what `loader.load_ruleset` returns and the engine reads.

Nothing here reads files or the database; every object is checked by the loader before it is
built, so the methods below trust their fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any

from .facts import TicketFacts


def normalise_address(address: str) -> str:
    """The lowercased addr-spec of `address` ("Alice <Alice@Example.com>" -> "alice@example.com")."""
    return parseaddr(address or "")[1].strip().lower()


def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    if not keywords:
        return None
    # Whole words, case-insensitively; a phrase matches across any run of whitespace.
    words = [r"\s+".join(re.escape(part) for part in keyword.split()) for keyword in keywords]
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)


@dataclass(frozen=True)
class Severity:
    name: str
    keywords: tuple[str, ...]
    first_response: timedelta | None
    resolution: timedelta | None
    default: bool
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", _keyword_pattern(self.keywords))

    def matches(self, text: str) -> bool:
        """Whether one of the keywords occurs in `text` as a whole word, ignoring case."""
        return self._pattern is not None and self._pattern.search(text or "") is not None


@dataclass(frozen=True)
class Tier:
    level: int
    name: str
    group: str  # where escalations to this tier are sent
    roster: tuple[str, ...]  # lowercased addr-specs of who may act by replying
    lead: str | None  # accountable; told of breaches

    def has_member(self, address: str) -> bool:
        """Whether `address` (an addr-spec, or a full "Name <addr>") is on this tier's roster."""
        return normalise_address(address) in self.roster


@dataclass(frozen=True)
class BoundCriterion:
    """One `name: value` line of a rule's `when:`, parsed and bound to its registered criterion."""

    name: str
    value: Any  # the criterion's parsed value, e.g. a timedelta or a tuple of names
    criterion: Any  # the registry object (see registry.py)

    def holds_from(self, facts: TicketFacts, ruleset: Ruleset) -> datetime | None:
        return self.criterion.holds_from(facts, self.value, ruleset)

    @property
    def timed(self) -> bool:
        return bool(self.criterion.timed)

    def describe(self) -> str:
        return self.criterion.describe(self.value)


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    criteria: tuple[BoundCriterion, ...]
    escalate_to: int
    repeat_every: timedelta | None
    next_tier_after: int | None
    template: str
    line: int  # where the rule starts in rules.yaml, for `rules explain` and audit events

    def fires_at(self, facts: TicketFacts, ruleset: Ruleset) -> datetime | None:
        """None if a criterion does not hold; else the moment from which all of them hold.

        That is the latest of the criteria's moments, but never before the ticket was created:
        a rule of untimed criteria only (all ALWAYS) fires from `created_at`, so nobody has to
        store or count repeats from year 1. The moment may be in the future (a time criterion
        not yet reached); whether it is due is the engine's decision.
        """
        latest = facts.created_at
        for bound in self.criteria:
            moment = bound.holds_from(facts, ruleset)
            if moment is None:
                return None
            latest = max(latest, moment)
        return latest

    def tier_for_step(self, step: int, ruleset: Ruleset) -> int:
        """The tier level of notification number `step` (0 = the first one, at escalate_to).

        With next_tier_after = M, steps 0..M go to escalate_to, steps M+1..2M+1 to the next
        existing tier, and so on, capped at the highest tier.
        """
        level = self.escalate_to
        if self.next_tier_after is None:
            return level
        for _ in range(step // (self.next_tier_after + 1)):
            upper = ruleset.next_tier(level)
            if upper is None:
                break
            level = upper.level
        return level


@dataclass(frozen=True)
class Ruleset:
    version: int
    source: str  # the path rules.yaml was loaded from, as the caller gave it
    timezone: str  # IANA name
    support_address: str  # our own public address, lowercased
    reference_prefix: str  # "T" for T-1, T-2, …
    severities: tuple[Severity, ...]  # most severe first
    tiers: tuple[Tier, ...]  # by level, lowest first
    rules: tuple[Rule, ...]  # in file order
    _tiers: dict[int, Tier] = field(init=False, repr=False, compare=False)
    _severities: dict[str, Severity] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tiers", {tier.level: tier for tier in self.tiers})
        object.__setattr__(self, "_severities", {severity.name: severity for severity in self.severities})

    def tier(self, level: int) -> Tier:
        """The tier at `level`; KeyError if there is none."""
        return self._tiers[level]

    def next_tier(self, level: int) -> Tier | None:
        """The tier with the lowest level above `level`, or None at the top."""
        above = [tier for tier in self.tiers if tier.level > level]
        return min(above, key=lambda tier: tier.level) if above else None

    @property
    def max_tier_level(self) -> int:
        return max(tier.level for tier in self.tiers)

    def is_roster_member(self, address: str) -> bool:
        """Whether `address` is on any tier's roster."""
        return any(tier.has_member(address) for tier in self.tiers)

    def severity(self, name: str) -> Severity:
        """The severity called `name`; KeyError if there is none."""
        return self._severities[name]

    @property
    def default_severity(self) -> Severity:
        for severity in self.severities:
            if severity.default:
                return severity
        raise LookupError("no default severity")

    def severity_for(self, subject: str, body: str) -> str:
        """The name of the first severity, in file order, with a keyword in the subject or body."""
        for severity in self.severities:
            if severity.matches(subject) or severity.matches(body):
                return severity.name
        return self.default_severity.name

    def rule(self, name: str) -> Rule:
        """The rule called `name`; KeyError if there is none."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)
