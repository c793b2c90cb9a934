"""The tick: evaluate the tickets that are due, escalate what the rules say, and schedule each
ticket's next look.

A tick reads only tickets whose `next_due_at` has come (an indexed range scan), so its cost
follows what is due, not what is open. Each ticket is evaluated in its own write transaction:
the escalation step, its audit event and its outbox row commit together. Step N of a rule on a
ticket is due at `started_at + N × repeat_every`, a pure function of the stored start, so
evaluating the same moment twice cannot queue a second notification (and the unique key on the
outbox makes sure of it — N10).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from . import crashpoints, tickets
from .db import write_transaction
from .models import ACTIVE_STATUSES, Escalation, Ticket
from .notify import queue_escalation
from .rules.facts import TicketFacts
from .rules.model import Rule, Ruleset
from .templates import Renderer

log = logging.getLogger(__name__)

DUE_BATCH = 500


@dataclass
class TickResult:
    evaluated: int = 0
    notifications: int = 0
    escalated: list[str] = field(default_factory=list)


def facts_of(ticket: Ticket) -> TicketFacts:
    return TicketFacts(
        status=ticket.status,
        severity=ticket.severity,
        tier=ticket.tier,
        created_at=ticket.created_at,
        first_response_at=ticket.first_response_at,
        last_customer_message_at=ticket.last_customer_message_at,
        last_agent_message_at=ticket.last_agent_message_at,
        acknowledged=ticket.acknowledged_at is not None,
    )


def tick(ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime, *, batch: int = DUE_BATCH) -> TickResult:
    """Evaluate every ticket due at `now`, in batches, each ticket in its own transaction."""
    result = TickResult()
    while True:
        due = list(Ticket.select(Ticket.id)
                   .where((Ticket.next_due_at <= now) & Ticket.status.in_(ACTIVE_STATUSES))
                   .order_by(Ticket.next_due_at, Ticket.id).limit(batch))
        if not due:
            return result
        for row in due:
            with write_transaction():
                ticket = Ticket.get_by_id(row.id)
                queued = evaluate(ticket, ruleset, renderer, secret, now)
                crashpoints.hit("in-tick-before-commit")
            result.evaluated += 1
            result.notifications += queued
            if queued:
                result.escalated.append(ticket.ref)
        if len(due) < batch:
            return result


def evaluate(ticket: Ticket, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime) -> int:
    """Apply every rule to one ticket at `now`; returns how many notifications were queued."""
    facts = facts_of(ticket)
    escalations = {e.rule: e for e in Escalation.select().where(Escalation.ticket == ticket)}
    upcoming: list[datetime] = []
    queued = 0
    for rule in ruleset.rules:
        escalation = escalations.get(rule.name)
        if escalation is not None and escalation.state != "active":
            continue  # acknowledged or ended: this rule has done its work on this ticket
        fires_at = rule.fires_at(facts, ruleset)
        if fires_at is None:
            if escalation is not None:
                tickets.end_escalation(ticket, escalation, now, why="the rule no longer holds")
            continue
        if escalation is None:
            if fires_at > now:
                upcoming.append(fires_at)
                continue
            escalation = Escalation.create(ticket=ticket, rule=rule.name, tier=rule.escalate_to, step=0,
                                           started_at=fires_at, last_step_due_at=fires_at)
            step = 0
        else:
            if rule.repeat_every is None:
                continue
            next_due = escalation.started_at + (escalation.step + 1) * rule.repeat_every
            if next_due > now:
                upcoming.append(next_due)
                continue
            # after a long pause (daemon down, or --now jumped) catch up to where time says the
            # escalation should be, with one notification rather than a burst of stale ones
            elapsed_steps = int((now - escalation.started_at) / rule.repeat_every)
            step = max(escalation.step + 1, elapsed_steps)
        queued += _escalate(ticket, escalation, rule, step, ruleset, renderer, secret, now)
        if rule.repeat_every is not None:
            upcoming.append(escalation.started_at + (step + 1) * rule.repeat_every)
    tickets.schedule(ticket, min(upcoming) if upcoming else None)
    return queued


def describe_next_step(rule: Rule, escalation_start: datetime, step: int, ruleset: Ruleset) -> str:
    if rule.repeat_every is None:
        return "No reminders follow; this rule does not repeat."
    when = escalation_start + (step + 1) * rule.repeat_every
    next_tier = ruleset.tier(rule.tier_for_step(step + 1, ruleset))
    current = ruleset.tier(rule.tier_for_step(step, ruleset))
    what = (f"escalation to {next_tier.name} (tier {next_tier.level})" if next_tier.level != current.level
            else f"a reminder to {current.name}")
    return f"Unless someone acknowledges, {what} at {when.strftime('%Y-%m-%d %H:%M UTC')}."


def _escalate(ticket: Ticket, escalation: Escalation, rule: Rule, step: int, ruleset: Ruleset,
              renderer: Renderer, secret: bytes, now: datetime) -> int:
    due_at = escalation.started_at + step * rule.repeat_every if rule.repeat_every else escalation.started_at
    previous_level = escalation.tier if step > 0 else None
    tier = ruleset.tier(rule.tier_for_step(step, ruleset))
    tickets.record_escalation_step(ticket, escalation, tier=tier.level, step=step, due_at=due_at, now=now)
    row = queue_escalation(
        ticket=ticket, escalation=escalation, rule=rule, tier=tier, step=step, due_at=due_at,
        next_step=describe_next_step(rule, escalation.started_at, step, ruleset), ruleset=ruleset,
        renderer=renderer, secret=secret, now=now,
        previous_tier=ruleset.tier(previous_level) if previous_level is not None else None,
    )
    if row is not None:
        log.info("queued %s for %s to tier %s (rule %s, step %s)", row.kind, ticket.ref, tier.level, rule.name, step)
    return 1 if row is not None else 0
