"""One escalation ladder per ticket, and the one function that moves it: `decide`.

A ticket has at most one active ladder: the tier that has the ticket, how many reminders that
tier has had, when the next step is due, and why (the rules that hold). Rules that hold do not
start chains of their own. When a rule begins to hold (it *fires*), it raises the ladder's floor:

- a rule whose tier is at or below the ladder's tier is *absorbed* (recorded, no mail);
- a rule above it moves the ladder up at once, with one mail naming every rule that holds;
- with no ladder running, it starts one at its tier.

The ladder then follows the cadence of the highest-tier rule that holds (`repeat_every`,
`next_tier_after`): reminders to the tier, then the next tier, up to the top, where the tier is
reminded `top_reminders` times (rules.yaml `ladder:`); then the ladder is *exhausted* and stops,
with one "unanswered" mail to the top tier's lead. An acknowledgement stops it at once.

After an acknowledgement, rules that fire at or below the acknowledging tier are absorbed and
a rule above it starts a new ladder at its tier. After an exhausted ladder, rules at or below its
tier are absorbed until something new happens: the customer writes again, the severity rises or
an agent asks for escalation (#escalate).

Every step is due at a time that depends only on when the rule fired and the calendar, never on
when a tick happened to run, so a late tick catches up to where the ladder should be, with one
mail. Whatever happens, a ticket gets at most one tier-group mail per decision, and never one to
a tier below the one its ladder has reached.

`decide` is pure: the engine applies its decision to the database, `rules simulate` and `rules
explain` apply the same function in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Mapping

from escalate.rules.calendar import Calendar
from escalate.rules.facts import TicketFacts
from escalate.rules.model import Rule, Ruleset

NONE, ACTIVE, ACKNOWLEDGED, EXHAUSTED, ENDED = "none", "active", "acknowledged", "exhausted", "ended"
# kinds of ladder mail: the first of a ladder, a reminder to the same tier, the next tier up,
# and the lead's notice that the top of the ladder went unanswered
ESCALATION, REMINDER, NEXT_TIER, UNANSWERED = "escalation", "reminder", "next-tier", "unanswered"
_CATCH_UP_LIMIT = 1000  # steps walked in one decision: far more than any ladder has


@dataclass(frozen=True)
class Ladder:
    """Where a ticket's escalation stands. `state` none: it never had one."""

    state: str = NONE
    tier: int | None = None
    step: int = 0  # mails to this tier after its first: the number of the last reminder
    rule: str | None = None  # the rule whose cadence the ladder follows
    reasons: tuple[str, ...] = ()  # every rule that fired into this ladder, in the order they fired
    started_at: datetime | None = None
    tier_since: datetime | None = None  # when the current tier's first step was due
    last_step_due_at: datetime | None = None  # when the last step taken was due
    next_step_at: datetime | None = None  # None: no further step (no repeat, or not active)
    forced: bool = False  # started or raised by an agent's #escalate
    ack_tier: int | None = None  # the tier of whoever acknowledged
    ended_at: datetime | None = None  # acknowledged, exhausted or ended then
    severity: str | None = None  # the ticket's severity when the ladder started
    # the rules that have fired on this ticket, with the moment each began to hold: a rule fires
    # again only when that moment changes (it stopped holding and holds again)
    fired: Mapping[str, datetime] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.state == ACTIVE


@dataclass(frozen=True)
class MailStep:
    """The one tier mail a decision sends."""

    kind: str  # ESCALATION, REMINDER, NEXT_TIER or UNANSWERED
    tier: int
    step: int  # the reminder number within the tier (0: the tier's first mail)
    due_at: datetime
    rule: str  # the rule that moved the ladder (a reminder: the rule whose cadence it follows)
    reasons: tuple[str, ...]  # every rule of the ladder
    previous_tier: int | None = None  # for NEXT_TIER: whose turn it was


@dataclass(frozen=True)
class Firing:
    """A rule that began to hold: its once-only actions run, whether or not it moves the ladder."""

    rule: Rule
    at: datetime  # when it began to hold
    absorbed: bool  # it did not move the ladder (its tier was already covered)


@dataclass(frozen=True)
class Decision:
    ladder: Ladder
    mail: MailStep | None
    firings: tuple[Firing, ...]
    severity: str  # as the firing rules' set_severity leave it
    next_due: datetime | None  # when the ticket next needs looking at
    started: bool = False  # a new ladder (a new row in the database)
    ended: str | None = None  # why the ladder ended without a mail, if it did
    # with `started`: the ladder that was active before, as it ended in this decision (exhausted),
    # to be written before the new one
    closed: Ladder | None = None


def is_forced(rule: Rule) -> bool:
    """A rule that answers an agent's explicit #escalate."""
    return any(bound.name == "escalation_requested" for bound in rule.criteria)


def _severity_rank(ruleset: Ruleset, name: str | None) -> int:
    names = [severity.name for severity in ruleset.severities]
    return names.index(name) if name in names else len(names)


def _renewed_at(ladder: Ladder, facts: TicketFacts, ruleset: Ruleset, now: datetime) -> datetime | None:
    """When something new happened since the ladder ended — the customer wrote, an agent asked for
    escalation, the severity rose (known only now) — or None."""
    since = ladder.ended_at
    if since is None:
        return None
    moments = [moment for moment in (facts.last_customer_message_at, facts.escalation_requested_at)
               if moment is not None and moment > since]
    if ladder.severity is not None and _severity_rank(ruleset, facts.severity) < _severity_rank(ruleset, ladder.severity):
        moments.append(now)  # ladders from before kept no severity
    return min(moments) if moments else None


def covered_tier(ladder: Ladder, facts: TicketFacts, ruleset: Ruleset, now: datetime) -> int:
    """The tier at or below which a rule that fires now is absorbed (0: none is)."""
    if ladder.state == ACTIVE:
        return ladder.tier or 0
    if ladder.state == ACKNOWLEDGED:
        # someone on no roster (an admin) acknowledged before anything escalated: the lowest tier
        lowest = ruleset.tiers[0].level if ruleset.tiers else 0
        return ladder.ack_tier or ladder.tier or lowest
    if ladder.state == EXHAUSTED and _renewed_at(ladder, facts, ruleset, now) is None:
        return ladder.tier or 0
    return 0


def _holding(facts: TicketFacts, ladder: Ladder, ruleset: Ruleset,
             now: datetime) -> tuple[list[tuple[Rule, datetime]], list[tuple[Rule, datetime]], list[datetime]]:
    """(rules that hold now with their moments, rules that fire now, moments of rules not yet holding)."""
    holding: list[tuple[Rule, datetime]] = []
    firing: list[tuple[Rule, datetime]] = []
    upcoming: list[datetime] = []
    for rule in ruleset.rules:
        if rule.incident_wide and rule.name in facts.incident_rules_fired and ladder.fired.get(rule.name) is None:
            continue  # the incident's rule acted already, through another of its tickets
        at = rule.fires_at(facts, ruleset)
        if at is None:
            continue
        if at > now:
            upcoming.append(at)
            continue
        holding.append((rule, at))
        if ladder.fired.get(rule.name) != at:
            firing.append((rule, at))
    return holding, firing, upcoming


def _set_severity(rule: Rule) -> str | None:
    for bound in rule.actions:
        if bound.name == "set_severity":
            return str(bound.value)
    return None


def decide(facts: TicketFacts, ladder: Ladder, ruleset: Ruleset, now: datetime) -> Decision:
    """What happens to the ticket at `now`: which rules fire, what the ladder does, which one mail
    (if any) goes to a tier, and when the ticket is next due.

    What happened since the last decision is replayed in time order — the ladder's steps and the
    moments rules began to hold — as if a tick had run at each of them, so a late tick (downtime,
    `--now` jumping) leaves the ladder where regular ticks would have; then one mail says where it
    is now, compared with where it was."""
    holding, firing, upcoming = _holding(facts, ladder, ruleset, now)
    for _pass in range(3):  # a firing rule's set_severity changes the clocks: look again with it
        wanted = next((s for s in map(_set_severity, (r for r, _ in firing)) if s and s != facts.severity), None)
        if wanted is None:
            break
        facts = replace(facts, severity=wanted)
        holding, firing, upcoming = _holding(facts, ladder, ruleset, now)
    calendar = ruleset.calendar_for_severity(facts.severity)
    holding_notifying = [(rule, at) for rule, at in holding if rule.notifies]
    fired = dict(ladder.fired)
    fired.update((rule.name, at) for rule, at in firing)
    replay = _Replay(start=replace(ladder, fired=fired), facts=facts, ruleset=ruleset, calendar=calendar,
                     holding=holding_notifying, now=now)
    moments: dict[datetime, dict[str, tuple[Rule, datetime]]] = {}
    for rule, at in firing:
        if rule.notifies:
            moments.setdefault(at, {})[rule.name] = (rule, at)
    renewed = _renewed_at(ladder, facts, ruleset, now) if ladder.state == EXHAUSTED else None
    if renewed is not None and renewed <= now:
        # an exhausted ladder and something new: what holds escalates again, from that moment
        for rule, _at in holding_notifying:
            moments.setdefault(renewed, {}).setdefault(rule.name, (rule, renewed))
    for moment in sorted(moments):
        replay.steps_until(moment)
        replay.fire(list(moments[moment].values()))
    ended = replay.settle(now)
    firings = tuple(Firing(rule, at, absorbed=rule.notifies and rule.name not in replay.raised)
                    for rule, at in firing)
    new = replay.ladder
    due = list(upcoming)
    if new.state == ACTIVE and new.next_step_at is not None:
        due.append(new.next_step_at)
    return Decision(ladder=new, mail=replay.mail(), firings=firings, severity=facts.severity,
                    next_due=min(due) if due else None, started=replay.started, ended=ended, closed=replay.closed)


class _Replay:
    """The ladder moved through the moments of one decision (see `decide`)."""

    def __init__(self, *, start: Ladder, facts: TicketFacts, ruleset: Ruleset, calendar: Calendar,
                 holding: list[tuple[Rule, datetime]], now: datetime) -> None:
        self.start, self.ladder = start, start
        self.facts, self.ruleset, self.calendar, self.holding, self.now = facts, ruleset, calendar, holding, now
        self.started = False  # a new ladder began (the tier it is at has not heard of it yet)
        self.closed: Ladder | None = None  # the ladder active at the start, if it ended before a new one began
        self.raised: set[str] = set()  # rules that moved the ladder (the rest that fired were absorbed)
        self.mover: str | None = None  # the rule behind the last move up or start

    def steps_until(self, moment: datetime) -> None:
        """Every step of the ladder due by `moment`: reminders, climbs, and at the top its end."""
        rule = _rule_of(self.ladder, self.ruleset)
        for _ in range(_CATCH_UP_LIMIT):
            ladder, due = self.ladder, self.ladder.next_step_at
            if not ladder.active or rule is None or rule.repeat_every is None or due is None or due > moment:
                return
            after = self.calendar.add(due, rule.repeat_every)
            upper = self.ruleset.next_tier(ladder.tier) if rule.next_tier_after is not None else None
            if upper is not None and ladder.step >= rule.next_tier_after:
                self.ladder = replace(ladder, tier=upper.level, step=0, tier_since=due, last_step_due_at=due,
                                      next_step_at=after)
                self.mover = rule.name
            elif upper is None and ladder.step >= self.ruleset.top_reminders:
                if self.started or not self.start.active or ladder.tier != self.start.tier:
                    # the tier it reached in this decision hears of it before the ladder gives up:
                    # the end comes one interval from now, never in this tick
                    self.ladder = replace(ladder, next_step_at=self.calendar.add(self.now, rule.repeat_every))
                    return
                self.ladder = replace(ladder, state=EXHAUSTED, ended_at=due, next_step_at=None)
                return
            else:
                self.ladder = replace(ladder, step=ladder.step + 1, last_step_due_at=due, next_step_at=after)

    def fire(self, group: list[tuple[Rule, datetime]]) -> None:
        """Rules that began to hold at one moment: a tier above what is covered moves the ladder up
        (or starts one); the others are absorbed."""
        ladder = self.ladder
        covered = covered_tier(ladder, self.facts, self.ruleset, self.now)
        raising = [(rule, at) for rule, at in group
                   if rule.escalate_to > covered or (is_forced(rule) and not ladder.active)]
        if ladder.active:
            reasons = tuple(dict.fromkeys((*ladder.reasons, *(rule.name for rule, _ in group))))
            self.ladder = ladder = replace(ladder, reasons=reasons)
        if not raising:
            return
        # the highest tier asked for wins; among equals the first rule in the file
        top_rule, at = max(raising, key=lambda pair: pair[0].escalate_to)
        level = max(top_rule.escalate_to, covered)  # a forced rule below what is covered: never down
        cadence = _cadence_rule([(top_rule, at)] + self.holding, top_rule.name)
        moving_up = ladder.active
        if not moving_up and self.start.active and self.closed is None:
            self.closed = ladder  # it ran its course in this decision; a new one begins
        self.ladder = Ladder(
            state=ACTIVE, tier=level, step=0, rule=cadence.name, last_step_due_at=at, tier_since=at,
            reasons=ladder.reasons if moving_up else tuple(dict.fromkeys(rule.name for rule, _ in group)),
            started_at=ladder.started_at if moving_up else at, next_step_at=_after(self.calendar, at, cadence),
            forced=(ladder.forced and moving_up) or any(is_forced(rule) for rule, _ in raising),
            severity=ladder.severity if moving_up else self.facts.severity, fired=ladder.fired)
        self.started = self.started or not moving_up
        self.raised.update(rule.name for rule, _ in raising)
        self.mover = top_rule.name

    def settle(self, now: datetime) -> str | None:
        """The ladder at `now`: paused while the ticket waits on the customer, ended when no rule that
        escalates holds any more, else on at the cadence of the rules that hold. Returns why it
        ended, if it did."""
        ladder = self.ladder
        if not ladder.active:
            return None
        if not self.holding:
            if self.facts.status == "waiting":
                # waiting on the customer pauses the ladder; their reply makes the ticket due again
                self.ladder = replace(ladder, next_step_at=None)
                return None
            self.ladder = replace(ladder, state=ENDED, ended_at=now, next_step_at=None)
            return "no rule that escalates holds any more"
        cadence = _cadence_rule(self.holding, ladder.rule)
        if cadence.name != ladder.rule or (ladder.next_step_at is None and cadence.repeat_every is not None):
            # its rule stopped holding, or does not repeat while another that holds does: the ladder
            # goes on at that rule's cadence, from its last step
            self.ladder = replace(ladder, rule=cadence.name, next_step_at=_after(
                self.calendar, ladder.last_step_due_at or ladder.tier_since or now, cadence))
        self.steps_until(now)
        return None

    def mail(self) -> MailStep | None:
        """The one mail that says where the ladder is now, compared with where it was."""
        before, after = self.start, self.ladder
        if after.state not in (ACTIVE, EXHAUSTED):
            return None
        if self.started:
            kind = ESCALATION
        elif after.tier != before.tier:
            kind = NEXT_TIER
        elif after.state == EXHAUSTED and before.state != EXHAUSTED:
            return MailStep(kind=UNANSWERED, tier=after.tier, step=after.step, due_at=after.ended_at,
                            rule=after.rule, reasons=after.reasons)
        elif after.step != before.step:
            return MailStep(kind=REMINDER, tier=after.tier, step=after.step, due_at=after.last_step_due_at,
                            rule=after.rule, reasons=after.reasons)
        else:
            return None
        return MailStep(kind=kind, tier=after.tier, step=after.step, due_at=after.last_step_due_at,
                        rule=self.mover or after.rule, reasons=after.reasons,
                        previous_tier=before.tier if kind == NEXT_TIER else None)


def _cadence_rule(holding: list[tuple[Rule, datetime]], current: str | None) -> Rule:
    """Whose cadence the ladder follows among the rules that hold: its own rule while that holds
    and repeats; else the highest-tier rule that repeats (the first in the file among equals);
    else the highest-tier rule."""
    rules = [rule for rule, _ in holding]
    for rule in rules:
        if rule.name == current and rule.repeat_every is not None:
            return rule
    repeating = [rule for rule in rules if rule.repeat_every is not None]
    return max(repeating or rules, key=lambda rule: rule.escalate_to)


def _rule_of(ladder: Ladder, ruleset: Ruleset) -> Rule | None:
    try:
        return ruleset.rule(ladder.rule) if ladder.rule else None
    except KeyError:  # the rule left rules.yaml since: no further steps
        return None


def _after(calendar: Calendar, moment: datetime, rule: Rule) -> datetime | None:
    return calendar.add(moment, rule.repeat_every) if rule.repeat_every is not None else None
