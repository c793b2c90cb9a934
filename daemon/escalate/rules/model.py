"""The rules as frozen values: what `loader.load_ruleset` returns and the engine reads.

Nothing here reads files or the database; every object is checked by the loader before it is
built, so the methods below trust their fields.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from email.utils import parseaddr
from typing import Any, Iterable

from escalate.rules.calendar import ALWAYS_NAME, Calendar
from escalate.rules.facts import TicketFacts

# how often the top tier of a ladder is reminded before the ladder stops, as PagerDuty's and
# GoAlert's escalation policies repeat 3 times by default
DEFAULT_TOP_REMINDERS = 3
# ladder mails a tier group gets an hour before the rest wait for one summary (notify.py)
DEFAULT_GROUP_MAILS_PER_HOUR = 30


@functools.lru_cache(maxsize=4096)  # the same few team addresses, for every notification a tick queues
def normalise_address(address: str) -> str:
    """The lowercased addr-spec of `address` ("Alice <Alice@Example.com>" -> "alice@example.com")."""
    return parseaddr(address or "")[1].strip().lower()


def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str] | None:
    if not keywords:
        return None
    # Whole words, case-insensitively; a phrase matches across any run of whitespace.
    words = [r"\s+".join(re.escape(part) for part in keyword.split()) for keyword in keywords]
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)


def importance_of(headers: Iterable[tuple[str, str]] | None) -> str | None:
    """"high", "normal" or "low" from Importance / X-Priority / Priority headers, or None."""
    for name, value in headers or ():
        key, text = name.lower(), str(value).strip().lower()
        if key == "importance" and text in ("high", "normal", "low"):
            return text
        if key == "x-priority" and text[:1] in "12345" and text:
            return {"1": "high", "2": "high", "3": "normal", "4": "low", "5": "low"}[text[0]]
        if key == "priority" and text in ("urgent", "non-urgent", "normal"):
            return {"urgent": "high", "non-urgent": "low", "normal": "normal"}[text]
    return None


@dataclass(frozen=True)
class Severity:
    name: str
    keywords: tuple[str, ...]
    first_response: timedelta | None
    resolution: timedelta | None
    default: bool
    next_response: timedelta | None = None  # an agent answers each customer message within this
    calendar: str = ALWAYS_NAME  # the business hours its clocks count in
    senders: tuple[str, ...] = ()  # addresses ("ceo@big.example") or domains ("@big.example")
    importance: tuple[str, ...] = ()  # "high"/"normal"/"low" from Importance or X-Priority
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", _keyword_pattern(self.keywords))

    def matches(self, text: str) -> bool:
        """Whether one of the keywords occurs in `text` as a whole word, ignoring case."""
        return self._pattern is not None and self._pattern.search(text or "") is not None

    def matches_sender(self, sender: str | None) -> bool:
        address = normalise_address(sender or "")
        if not address:
            return False
        domain = "@" + address.rpartition("@")[2]
        return any(entry == address or entry == domain for entry in self.senders)

    def target(self, name: str) -> timedelta | None:
        target: timedelta | None = getattr(self, name)
        return target


@dataclass(frozen=True)
class Tier:
    level: int
    name: str
    group: str  # where escalations to this tier are sent
    roster: tuple[str, ...]  # lowercased addr-specs of who may act by replying
    lead: str | None  # accountable; told of breaches
    consulted: tuple[tuple[str, str], ...] = ()  # (department name, address): asked for input
    informed: tuple[str, ...] = ()  # addresses that get the digest, not a message per ticket
    # chat channels (chat.py) that get what the group, the lead and the informed list are mailed
    chat: tuple[str, ...] = ()
    lead_chat: tuple[str, ...] = ()
    informed_chat: tuple[str, ...] = ()

    def has_member(self, address: str) -> bool:
        """Whether `address` (an addr-spec, or a full "Name <addr>") is on this tier's roster."""
        return normalise_address(address) in self.roster


@dataclass(frozen=True)
class BoundPlugin:
    """One `name: value` line of a rule, parsed and bound to the criterion or action registered
    under `name` (see registry.py)."""

    name: str
    value: Any  # the plugin's parsed value, e.g. a timedelta or a tuple of names
    plugin: Any  # the registry object

    def describe(self) -> str:
        return str(self.plugin.describe(self.value))


class BoundCriterion(BoundPlugin):
    """One line of a rule's `when:` (no_first_response_for, severity, …)."""

    def holds_from(self, facts: TicketFacts, ruleset: Ruleset) -> datetime | None:
        moment: datetime | None = self.plugin.holds_from(facts, self.value, ruleset)
        return moment

    @property
    def timed(self) -> bool:
        return bool(self.plugin.timed)


class BoundAction(BoundPlugin):
    """One action key of a rule's `then:` (alert_lead, set_severity, …)."""


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    criteria: tuple[BoundCriterion, ...]
    escalate_to: int | None  # None: the rule only runs its actions (e.g. set_severity)
    repeat_every: timedelta | None
    next_tier_after: int | None
    template: str
    line: int  # where the rule starts in rules.yaml, for `rules explain` and audit events
    actions: tuple[Any, ...] = ()  # BoundAction: what else happens when the rule fires (actions/)
    source: str = "rules"  # "rules" or "matrix" (generated from the decision matrix)

    @property
    def incident_wide(self) -> bool:
        """A rule about an incident acts once for the incident, on its primary ticket."""
        return any(bound.name == "customers_affected" for bound in self.criteria)

    @property
    def notifies(self) -> bool:
        """Whether the rule mails its tier (escalate_to set), rather than only running actions."""
        return self.escalate_to is not None

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

    def tier_for_step(self, step: int, ruleset: Ruleset) -> int | None:
        """The tier level of notification number `step` (0 = the first one, at escalate_to).

        With next_tier_after = M, steps 0..M go to escalate_to, steps M+1..2M+1 to the next
        existing tier, and so on, capped at the highest tier.
        """
        level = self.escalate_to
        if level is None or self.next_tier_after is None:
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
    calendars: tuple[Calendar, ...] = ()  # "always" is always there, even when not listed
    matrix: Any = None  # matrix.Matrix, or None when the file has no decision matrix
    incidents: Any = None  # IncidentPolicy, or None: similar tickets are not grouped
    acknowledge_customers: bool = False  # tell a customer their mail became a ticket (notify.queue_acknowledgement)
    plus_address_replies: bool = False  # Reply-To support+<token>@…: replies prove themselves without In-Reply-To
    digest_at: time = time(8, 0)  # the informed lists' daily digest goes out then, in `timezone` (digest.py)
    group_mails_per_hour: int = DEFAULT_GROUP_MAILS_PER_HOUR  # a tier group's ceiling on ladder mail (0: none)
    top_reminders: int = DEFAULT_TOP_REMINDERS  # reminders at the top of a ladder before it stops (rules/ladder.py)
    _tiers: dict[int, Tier] = field(init=False, repr=False, compare=False)
    _severities: dict[str, Severity] = field(init=False, repr=False, compare=False)
    _calendars: dict[str, Calendar] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tiers", {tier.level: tier for tier in self.tiers})
        object.__setattr__(self, "_severities", {severity.name: severity for severity in self.severities})
        calendars = {ALWAYS_NAME: Calendar.always_open(ALWAYS_NAME, self.timezone)}
        calendars.update({calendar.name: calendar for calendar in self.calendars})
        object.__setattr__(self, "_calendars", calendars)

    def calendar(self, name: str) -> Calendar:
        """The calendar called `name` ("always" is built in); KeyError if there is none."""
        return self._calendars[name]

    def calendar_for_severity(self, name: str) -> Calendar:
        """The calendar whose working time the clocks of severity `name` count."""
        severity = self._severities.get(name)
        if severity is None:
            # removed from rules.yaml since the ticket got it: the default severity's calendar
            severity = self.default_severity
        return self._calendars.get(severity.calendar) or self._calendars[ALWAYS_NAME]

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

    @functools.cached_property
    def team_addresses(self) -> frozenset[str]:
        """Our own people: the support address, tier groups, rosters and leads (the per-address cap on
        notifications is for everyone else). Computed once per ruleset: a tick asks it per recipient."""
        found = {self.support_address}
        for tier in self.tiers:
            found.add(normalise_address(tier.group))
            found.update(tier.roster)
            if tier.lead:
                found.add(normalise_address(tier.lead))
        return frozenset(found)

    @functools.cached_property
    def group_addresses(self) -> frozenset[str]:
        """The tier groups' and leads' addresses: the hourly ceiling on ladder mail is theirs."""
        return frozenset(normalise_address(a) for tier in self.tiers for a in (tier.group, tier.lead) if a)

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

    def severity_for(self, subject: str, body: str, sender: str | None = None,
                     headers: Iterable[tuple[str, str]] | None = None) -> str:
        """The first severity, in file order, whose keywords occur in the subject or body, whose
        sender list names the sender (or their domain), or whose importance the mail's
        Importance/X-Priority header states; the default severity if none does."""
        importance = importance_of(headers)
        for severity in self.severities:
            if (severity.matches(subject) or severity.matches(body) or severity.matches_sender(sender)
                    or (importance is not None and importance in severity.importance)):
                return severity.name
        return self.default_severity.name

    def rule(self, name: str) -> Rule:
        """The rule called `name`; KeyError if there is none."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)
