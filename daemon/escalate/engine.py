"""The tick: evaluate the tickets that are due, escalate what the rules say, and schedule each
ticket's next look.

A tick reads only tickets whose `next_due_at` has come (an indexed range scan), so its cost
follows what is due, not what is open. `next_due_at` is exact under business-hours calendars: it is
the moment the ticket's clocks, counting only working time and pausing while the ticket waits on
the customer, reach the next threshold (rules/clocks.py).

Due tickets are evaluated in batches, one write transaction per batch (one fsync, not one per
ticket) and a savepoint per ticket, so a ticket that fails is rolled back alone and retried later
while the rest of the batch commits. The escalation step, its audit event naming the rule and its
outbox row commit together. Step N of a rule on a ticket is due when the severity's calendar has
counted N × repeat_every of working time since the escalation started — a pure function of the
stored start — so evaluating the same moment twice cannot queue a second notification, and the
unique key on (ticket, rule, step, due) makes sure of it (N10).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import audit, clock, crashpoints, db, notify, rows, tickets
from .clock import parse_time
from .db import write_transaction
from .models import ACTIVE_STATUSES, Escalation, Ticket
from .notify import queue_escalation
from .rules.calendar import Calendar
from .rules.facts import TicketFacts
from .rules.model import Rule, Ruleset, Tier
from .templates import Renderer

log = logging.getLogger(__name__)

DUE_BATCH = 500
RETRY_AFTER_FAILURE = timedelta(minutes=5)
MAX_ROUNDS = 1000  # batches per tick: bounds a tick even if tickets keep coming due


@dataclass
class TickResult:
    evaluated: int = 0
    notifications: int = 0
    escalated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    digests: int = 0  # informed-list digests queued after the tick (service.tick, digest.py)


def _periods(ticket: Ticket) -> tuple[tuple[datetime, datetime], ...]:
    return tuple((parse_time(start), parse_time(end)) for start, end in (ticket.waiting_periods or []))


def incident_joins(ticket: Ticket) -> tuple[tuple[datetime, ...], bool]:
    """When each distinct customer joined the ticket's incident, and whether this is its primary ticket."""
    from .incidents import incident_facts  # the incident's own rows, not its members

    return incident_facts(ticket)


def facts_of(ticket: Ticket) -> TicketFacts:
    joins, primary = incident_joins(ticket)
    return TicketFacts(
        status=ticket.status,
        severity=ticket.severity,
        tier=ticket.tier,
        created_at=ticket.created_at,
        first_response_at=ticket.first_response_at,
        last_customer_message_at=ticket.last_customer_message_at,
        last_agent_message_at=ticket.last_agent_message_at,
        acknowledged=ticket.acknowledged_at is not None,
        waiting_periods=_periods(ticket),
        waiting_since=ticket.waiting_since,
        escalation_requested_at=ticket.escalation_requested_at,
        incident_joins=joins,
        incident_primary=primary,
    )


def step_due(calendar: Calendar, started_at: datetime, step: int, repeat_every: timedelta | None) -> datetime:
    """When step `step` of an escalation that started at `started_at` is due."""
    if step == 0 or repeat_every is None:
        return started_at
    return calendar.add(started_at, step * repeat_every)


def steps_elapsed(calendar: Calendar, started_at: datetime, now: datetime, repeat_every: timedelta) -> int:
    """The step time says the escalation should be at by `now` (for catching up after a pause)."""
    return int(calendar.business_time(started_at, now) / repeat_every)


def tick(ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime, *, batch: int = DUE_BATCH) -> TickResult:
    """Evaluate every ticket due at `now`, a batch per transaction, a savepoint per ticket."""
    result = TickResult()
    for _round in range(MAX_ROUNDS):
        touched: set[int] = set()  # tickets an action changed (an incident's severity) since the batch was read
        schedule: dict[int, datetime | None] = {}  # next due times, written in one statement per batch
        raised: dict[int, int] = {}  # tiers escalations raised tickets to, likewise
        # the batch's notifications are written together before it commits (notify.DeferredMail)
        # and so are its audit events (audit.DeferredEvents), after the mail, whose suppressions add some
        with write_transaction(), notify.deferred(secret) as mail, audit.deferred() as events:
            due = _claim_due(now, batch)
            if not due:
                break
            # Resolved or closed tickets run no clock, and drills (drill.py) are never escalated by rules:
            # they are not due (tickets.py normally clears next_due_at itself; this keeps it so).
            idle = [ticket.id for ticket in due if ticket.status not in ACTIVE_STATUSES or ticket.drill]
            if idle:
                Ticket.update(next_due_at=None).where(Ticket.id.in_(idle)).execute()
                due = [ticket for ticket in due if ticket.id not in set(idle)]
                if not due:
                    continue
            escalations = _escalations_of(due)
            mail.look_up([ticket.id for ticket in due])
            for ticket in due:
                if ticket.id in touched:
                    ticket = Ticket.get_by_id(ticket.id)
                before, tier_before = len(touched), ticket.tier
                try:
                    # a failing ticket is rolled back alone, its pending notifications and events with it
                    with db.savepoint(mail, events):
                        queued, next_due = _evaluate_ticket(ticket, ruleset, renderer, secret, now,
                                                            escalations.get(ticket.id, {}), touched)
                except Exception:  # one bad ticket must not stop the others; it is retried later
                    if db.connection_lost():  # not the ticket: the database went away with the whole batch
                        raise
                    log.exception("evaluating %s failed; retrying in %s", ticket.ref, RETRY_AFTER_FAILURE)
                    schedule[ticket.id] = now + RETRY_AFTER_FAILURE
                    result.failed.append(ticket.ref)
                    continue
                schedule[ticket.id] = next_due
                if ticket.tier != tier_before:
                    raised[ticket.id] = ticket.tier
                if len(touched) != before:  # an action made other tickets due now: keep that
                    for other in touched:
                        if other != ticket.id:
                            schedule.pop(other, None)
                result.evaluated += 1
                result.notifications += queued
                if queued:
                    result.escalated.append(ticket.ref)
                crashpoints.hit("in-tick-before-commit")  # a kill here loses the uncommitted batch only
            # N10: a notification the unique key already had is not written again, nor counted
            result.notifications -= mail.flush()
            events.flush()
            tickets.schedule_many(schedule, raised)
    return result


def _claim_due(now: datetime, batch: int) -> list[Ticket]:
    """The next due tickets, oldest first, read inside the batch's write transaction so nothing
    changes them between this read and the batch's commit.

    On next_due_at alone, so SQLite walks that index: with the status in the condition it picks the
    status index and sorts every open ticket, and a tick costs what is open. On PostgreSQL several
    instances tick at once: `FOR UPDATE SKIP LOCKED` makes the row lock the claim, so they split the
    due set and never evaluate a ticket twice; the lock goes at commit, at rollback, or when the
    instance's connection dies. A row another instance evaluated and committed meanwhile is
    re-checked against `next_due_at <= now` before it is locked. (SQLite: one instance, flock.)
    """
    condition = _DUE + " FOR UPDATE SKIP LOCKED" if db.shared() else _DUE
    return rows.select_models(Ticket, condition, [Ticket.next_due_at.db_value(now), batch])


# from a stored SQL text and loaded without peewee's row wrapper (rows.py): a tick claims up to 500
_DUE = 'WHERE "next_due_at" <= ? ORDER BY "next_due_at", "id" LIMIT ?'


def _escalations_of(due: list[Ticket]) -> dict[int, dict[str, Escalation]]:
    by_ticket: dict[int, dict[str, Escalation]] = {}
    ids = [t.id for t in due]
    for escalation in rows.select_models(Escalation, f'WHERE "ticket_id" IN ({", ".join("?" * len(ids))})', ids):
        by_ticket.setdefault(escalation.ticket_id, {})[escalation.rule] = escalation
    return by_ticket


def evaluate(ticket: Ticket, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
             escalations: dict[str, Escalation] | None = None, *, touched: set[int] | None = None) -> int:
    """Apply every rule to one ticket at `now`; returns how many notifications were queued."""
    if escalations is None:
        escalations = {e.rule: e for e in Escalation.select().where(Escalation.ticket == ticket)}
    queued, next_due = _evaluate_ticket(ticket, ruleset, renderer, secret, now, escalations,
                                        touched if touched is not None else set())
    tickets.schedule(ticket, next_due)
    return queued


def _evaluate_ticket(ticket: Ticket, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
                     escalations: dict[str, Escalation], touched: set[int]) -> tuple[int, datetime | None]:
    """(notifications queued, when the ticket is next due) — the caller stores the due time."""
    if ticket.snoozed_until is not None and ticket.snoozed_until > now:
        return 0, ticket.snoozed_until  # #snooze: look again when it ends
    queued = 0
    upcoming: list[datetime] = []
    for _pass in range(3):  # a rule that changes the severity changes the clocks: look again
        severity = ticket.severity
        upcoming, count = _evaluate_once(ticket, ruleset, renderer, secret, now, escalations, touched)
        queued += count
        if ticket.severity == severity:
            break
    return queued, min(upcoming) if upcoming else None


def _evaluate_once(ticket: Ticket, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
                   escalations: dict[str, Escalation], touched: set[int]) -> tuple[list[datetime], int]:
    facts = facts_of(ticket)
    calendar = ruleset.calendar_for_severity(ticket.severity)
    upcoming: list[datetime] = []
    queued = 0
    for rule in ruleset.rules:
        escalation = escalations.get(rule.name)
        if escalation is not None and escalation.state != "active":
            continue  # acknowledged or ended: this rule has done its work on this ticket
        fires_at = rule.fires_at(facts, ruleset)
        if fires_at is None:
            # Waiting on the customer pauses an escalation rather than ending it.
            if escalation is not None and facts.status != "waiting":
                tickets.end_escalation(ticket, escalation, now, why="the rule no longer holds")
            continue
        if escalation is None:
            if fires_at > now:
                upcoming.append(fires_at)
                continue
            values = {"ticket": ticket, "rule": rule.name, "tier": rule.escalate_to or ticket.tier or 0, "step": 0,
                      "started_at": fires_at, "last_step_due_at": fires_at,
                      "state": "active" if rule.notifies else "ended"}
            escalation = notify.new_escalation(values)
            escalations[rule.name] = escalation
            queued += _fire(ticket, escalation, rule, ruleset, renderer, secret, now, touched)
            step = 0
        else:
            if rule.repeat_every is None:
                continue
            next_due = step_due(calendar, escalation.started_at, escalation.step + 1, rule.repeat_every)
            if next_due > now:
                upcoming.append(next_due)
                continue
            # after a long pause (daemon down, or --now jumped) catch up to where time says the
            # escalation should be, with one notification rather than a burst of stale ones
            step = max(escalation.step + 1, steps_elapsed(calendar, escalation.started_at, now, rule.repeat_every))
            queued += _escalate(ticket, escalation, rule, step, calendar, ruleset, renderer, secret, now)
        if rule.notifies and rule.repeat_every is not None:
            upcoming.append(step_due(calendar, escalation.started_at, step + 1, rule.repeat_every))
    return upcoming, queued


def _fire(ticket: Ticket, escalation: Escalation, rule: Rule, ruleset: Ruleset, renderer: Renderer,
          secret: bytes, now: datetime, touched: set[int]) -> int:
    """The rule begins to hold: its first notification, then its actions (once per escalation)."""
    calendar = ruleset.calendar_for_severity(ticket.severity)
    queued = 0
    if rule.notifies:
        queued += _escalate(ticket, escalation, rule, 0, calendar, ruleset, renderer, secret, now)
    else:
        audit.record(ticket, now, tickets.SYSTEM, "rule-fired", rule=rule.name,
                     due_at=escalation.started_at.isoformat())
    if rule.actions:
        step = StepContext(ticket=ticket, rule=rule, ruleset=ruleset, escalation=escalation, step=0,
                           due_at=escalation.started_at, now=now, renderer=renderer, secret=secret,
                           tier=ruleset.tier(rule.escalate_to) if rule.notifies else None, touched=touched)
        for bound in rule.actions:
            queued += bound.action.run(step, bound.value)
    return queued


@dataclass
class StepContext:
    """What a rule action sees when its rule fires on a ticket (rules/actions/)."""

    ticket: Ticket
    rule: Rule
    ruleset: Ruleset
    escalation: Escalation
    step: int
    due_at: datetime
    now: datetime
    renderer: Renderer
    secret: bytes
    tier: Tier | None
    touched: set[int] = field(default_factory=set)  # ids of other tickets the action changed

    def audit(self, action: str, **detail) -> None:
        audit.record(self.ticket, self.now, tickets.SYSTEM, action, rule=self.rule.name, **detail)

    def breached(self) -> str:
        return " and ".join(bound.describe() for bound in self.rule.criteria)

    def affected_tickets(self) -> list[Ticket]:
        """The ticket, or for an incident rule every open ticket of the incident."""
        if not self.rule.incident_wide or self.ticket.incident_id is None:
            return [self.ticket]
        others = list(Ticket.select().where((Ticket.incident == self.ticket.incident_id)
                                            & (Ticket.id != self.ticket.id) & Ticket.status.in_(ACTIVE_STATUSES)))
        self.touched.update(other.id for other in others)
        return [self.ticket, *others]


def describe_next_step(rule: Rule, escalation_start: datetime, step: int, ruleset: Ruleset,
                       calendar: Calendar | None = None) -> str:
    if rule.repeat_every is None:
        return "No reminders follow; this rule does not repeat."
    calendar = calendar or ruleset.calendar("always")
    when = step_due(calendar, escalation_start, step + 1, rule.repeat_every)
    next_tier = ruleset.tier(rule.tier_for_step(step + 1, ruleset))
    current = ruleset.tier(rule.tier_for_step(step, ruleset))
    what = (f"escalation to {next_tier.name} (tier {next_tier.level})" if next_tier.level != current.level
            else f"a reminder to {current.name}")
    return f"Unless someone acknowledges, {what} at {clock.minutes_utc(when)}."


def _escalate(ticket: Ticket, escalation: Escalation, rule: Rule, step: int, calendar: Calendar, ruleset: Ruleset,
              renderer: Renderer, secret: bytes, now: datetime) -> int:
    due_at = step_due(calendar, escalation.started_at, step, rule.repeat_every)
    previous_level = escalation.tier if step > 0 else None
    tier = ruleset.tier(rule.tier_for_step(step, ruleset))
    tickets.record_escalation_step(ticket, escalation, tier=tier.level, step=step, due_at=due_at, now=now)
    row = queue_escalation(
        ticket=ticket, escalation=escalation, rule=rule, tier=tier, step=step, due_at=due_at,
        next_step=describe_next_step(rule, escalation.started_at, step, ruleset, calendar), ruleset=ruleset,
        renderer=renderer, secret=secret, now=now,
        previous_tier=ruleset.tier(previous_level) if previous_level is not None else None,
    )
    if row is not None:
        log.info("queued %s for %s to tier %s (rule %s, step %s)", row.kind, ticket.ref, tier.level, rule.name, step)
    return 1 if row is not None else 0
