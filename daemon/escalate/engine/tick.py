"""The tick: evaluate the tickets that are due, escalate what the rules say, and schedule each
ticket's next look.

A tick reads only tickets whose `next_due_at` has come (an indexed range scan), so its cost
follows what is due, not what is open. `next_due_at` is exact under business-hours calendars: it is
the moment the ticket's clocks, counting only working time and pausing while the ticket waits on
the customer, reach the next threshold (rules/clocks.py).

Due tickets are evaluated in batches, one write transaction per batch (one fsync, not one per
ticket) and a savepoint per ticket, so a ticket that fails is rolled back alone and retried later
while the rest of the batch commits.

What happens to a ticket is decided by one pure function, `rules.ladder.decide` (one escalation
ladder per ticket: at most one tier mail per ticket per tick, never down the tiers, bounded at
the top); this module applies the decision: the ladder row, its audit events, the mail, the
once-only actions of the rules that fired. Each step is due at a moment that follows from when its
rule fired, so evaluating the same moment twice cannot queue a second notification, and the
outbox's unique key on (ticket, rule, step, due) makes sure of it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from escalate import clock
from escalate.clock import parse_time
from escalate.ops import crashpoints, logs
from escalate.outbound import notify
from escalate.outbound.templates import Renderer
from escalate.rules.calendar import Calendar
from escalate.rules.facts import TicketFacts
from escalate.rules.ladder import ACKNOWLEDGED, ACTIVE, ESCALATION, EXHAUSTED, NEXT_TIER, UNANSWERED, Decision, Ladder, decide
from escalate.rules.model import Rule, Ruleset, Tier
from escalate.store import db, rows
from escalate.store import tickets as store_tickets
from escalate.store.batch import Batch, held_lines, writing
from escalate.store.db import write_transaction
from escalate.store.models import ACTIVE_STATUSES, Escalation, Incident, Ticket
from escalate.tickets import audit, incidents, ladders
from escalate.tickets import lifecycle as tickets
from escalate.tickets.incidents import IncidentFacts

log = logging.getLogger(__name__)

DUE_BATCH = 500
RETRY_AFTER_FAILURE = timedelta(minutes=5)
MAX_ROUNDS = 1000  # batches per tick: bounds a tick even if tickets keep coming due
# The daemon's tick stops claiming batches after this long; what is still due is the next tick's.
# A backlog that comes due at one instant (5,000 tickets past a target on Monday morning) is
# spread over ticks, and ingest, sending and the watchdog are not kept waiting by one long tick.
# `run --once` evaluates everything that is due (no budget).
DAEMON_TICK_BUDGET = 1.5  # seconds


@dataclass
class TickResult:
    evaluated: int = 0
    notifications: int = 0
    escalated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    digests: int = 0  # informed-list digests queued after the tick (service.tick, digest.py)
    more_due: bool = False  # stopped at its time budget with tickets still due


def _periods(ticket: Ticket) -> tuple[tuple[datetime, datetime], ...]:
    return tuple((parse_time(start), parse_time(end)) for start, end in (ticket.waiting_periods or []))


def facts_of(ticket: Ticket, incident: IncidentFacts | None = None) -> TicketFacts:
    """The ticket as the rules see it; `incident`: its incident's facts when the caller read them
    for a whole batch (incidents.incident_facts_many), else they are read here."""
    if incident is None:
        incident = incidents.incident_facts(ticket)
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
        incident_joins=incident.joins,
        incident_primary=incident.primary,
        incident_rules_fired=incident.rules_fired,
    )


def tick(ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime, *, batch: int = DUE_BATCH,
         budget: float | None = None) -> TickResult:
    """Evaluate every ticket due at `now`, a batch per transaction, a savepoint per ticket; with a
    `budget` (seconds), claim no further batch once it is spent and leave the rest due."""
    result = TickResult()
    started = time.monotonic()
    for _round in range(MAX_ROUNDS):
        if budget is not None and _round and time.monotonic() - started > budget:
            result.more_due = True
            break
        touched: set[int] = set()  # tickets an action changed (an incident's severity) since the batch was read
        schedule: dict[int, datetime | None] = {}  # next due times, written in one statement per batch
        raised: dict[int, int] = {}  # tiers escalations raised tickets to, likewise
        fired: dict[int, dict] = {}  # the rules that fired on each ticket (Ticket.rules_fired), likewise
        # the batch's notifications and audit events are written together before it commits (Batch.flush),
        # its log lines once it committed (logs.held)
        with logs.held() as held, write_transaction():
            mail = notify.DeferredMail(secret)
            work = Batch(mail, log=held)
            due = _claim_due(now, batch)
            if not due:
                break
            # Resolved or closed tickets run no clock, and drills (drill.py) are never escalated by rules:
            # they are not due (tickets.py normally clears next_due_at itself; this keeps it so).
            idle = [ticket.id for ticket in due if ticket.status not in ACTIVE_STATUSES or ticket.drill]
            if idle:
                tickets.clear_due(idle)
                due = [ticket for ticket in due if ticket.id not in set(idle)]
                if not due:
                    continue
            escalations = _escalations_of(due)
            incident_facts = incidents.incident_facts_many(due)  # one read for the batch's incidents
            mail.look_up([ticket.id for ticket in due])
            for ticket in due:
                if ticket.id in touched:  # an action changed it (and maybe its incident): read both again
                    ticket = Ticket.get_by_id(ticket.id)
                    incident_facts.pop(ticket.id, None)
                before, tier_before, fired_before = len(touched), ticket.tier, ticket.rules_fired
                try:
                    # a failing ticket is rolled back alone, its pending notifications and events with it
                    with work.unit():
                        queued, next_due = _evaluate_ticket(ticket, ruleset, renderer, secret, now,
                                                            escalations.get(ticket.id, []), touched,
                                                            incident_facts.get(ticket.id), work)
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
                if ticket.rules_fired is not fired_before:
                    fired[ticket.id] = ticket.rules_fired
                if len(touched) != before:  # an action made other tickets due now: keep that
                    for other in touched:
                        if other != ticket.id:
                            schedule.pop(other, None)
                result.evaluated += 1
                result.notifications += queued
                if queued:
                    result.escalated.append(ticket.ref)
                crashpoints.hit("in-tick-before-commit")  # a kill here loses the uncommitted batch only
            # a notification the unique key already had is not written again, nor counted
            result.notifications -= work.flush()
            tickets.schedule_many(schedule, raised, fired)
    # what a tier group's hourly ceiling held back reaches it as one summary (a few indexed reads a
    # tick: suppressed mail is rare)
    with write_transaction():
        result.notifications += notify.queue_group_summaries(ruleset=ruleset, renderer=renderer, secret=secret, now=now)
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
    return store_tickets.claim_due(now, batch, lock=db.shared())


def _escalations_of(due: list[Ticket]) -> dict[int, list[Escalation]]:
    """Every ladder row of the due tickets (the current one and their history), in one query."""
    by_ticket: dict[int, list[Escalation]] = {}
    ids = [t.id for t in due]
    for escalation in store_tickets.escalations_of(ids):
        by_ticket.setdefault(escalation.ticket_id, []).append(escalation)
    return by_ticket


def evaluate(ticket: Ticket, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
             escalations: list[Escalation] | None = None, *, touched: set[int] | None = None) -> int:
    """Decide for one ticket at `now` and apply the decision; returns how many notifications were queued."""
    if escalations is None:
        escalations = list(Escalation.select().where(Escalation.ticket == ticket))
    queued, next_due = _evaluate_ticket(ticket, ruleset, renderer, secret, now, escalations,
                                        touched if touched is not None else set())
    tickets.schedule(ticket, next_due)
    return queued


def _evaluate_ticket(ticket: Ticket, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
                     escalations: list[Escalation], touched: set[int], incident: IncidentFacts | None = None,
                     batch: Batch | None = None) -> tuple[int, datetime | None]:
    """(notifications queued, when the ticket is next due) — the caller stores the due time; in a
    tick `batch` keeps the mail, ladders and events for the batch's end."""
    if ticket.snoozed_until is not None and ticket.snoozed_until > now:
        return 0, ticket.snoozed_until  # #snooze: look again when it ends
    ladder = ladders.ladder_of(ticket, escalations)
    decision = decide(facts_of(ticket, incident), ladder, ruleset, now)
    row = _apply_ladder(ticket, ladders.current_row(escalations), ladder, decision, ruleset, now, batch)
    queued = 0
    if decision.mail is not None:  # the tier's mail first, then what the rules that fired do
        queued += _queue_mail(ticket, row, decision, ruleset, renderer, secret, now, batch)
    queued += _fire(ticket, row, decision, ruleset, renderer, secret, now, touched, batch)
    return queued, decision.next_due


def _apply_ladder(ticket: Ticket, row: Escalation | None, before: Ladder, decision: Decision, ruleset: Ruleset,
                  now: datetime, batch: Batch | None) -> Escalation | None:
    """Write the ladder as the decision leaves it (a new row when a new ladder starts) and audit it."""
    ladder = decision.ladder
    if decision.started:
        if row is not None and row.state == ACTIVE:
            # the active ladder ran its course within this decision (a late tick), then a rule
            # started a new one: the old row ends as it did, then the new row
            closed = decision.closed or replace(before, state=EXHAUSTED, ended_at=now, next_step_at=None)
            ladders.write(row, closed, batch)
            if closed.state == EXHAUSTED:
                audit.record(ticket, now, tickets.SYSTEM, "ladder-exhausted", rule=closed.rule, tier=closed.tier,
                             reminders=closed.step, batch=batch)
        row = notify.new_escalation(ticket, ladder, batch)
    elif row is not None:
        ladders.write(row, ladder, batch)
    mail = decision.mail
    if mail is not None and mail.kind != UNANSWERED:
        tickets.raise_tier(ticket, mail.tier)
        action = {ESCALATION: "escalated", NEXT_TIER: "escalated-next-tier"}.get(mail.kind, "reminded")
        audit.record(ticket, now, tickets.SYSTEM, action, rule=mail.rule, tier=mail.tier, step=mail.step,
                     due_at=mail.due_at.isoformat(), reasons=list(mail.reasons), batch=batch)
    if ladder.state == EXHAUSTED and before.state != EXHAUSTED:
        audit.record(ticket, now, tickets.SYSTEM, "ladder-exhausted", rule=ladder.rule, tier=ladder.tier,
                     reminders=ladder.step, batch=batch)
    if decision.ended:
        audit.record(ticket, now, tickets.SYSTEM, "escalation-ended", rule=ladder.rule, why=decision.ended,
                     batch=batch)
    return row


def _queue_mail(ticket: Ticket, row: Escalation | None, decision: Decision, ruleset: Ruleset, renderer: Renderer,
                secret: bytes, now: datetime, batch: Batch | None) -> int:
    mail = decision.mail
    calendar = ruleset.calendar_for_severity(decision.severity)
    queued = notify.queue_ladder_mail(ticket=ticket, escalation=row, step=mail, ruleset=ruleset, renderer=renderer,
                                      secret=secret, now=now,
                                      next_step=describe_next_step(decision.ladder, ruleset, calendar), batch=batch)
    if queued is not None:
        logs.event(log, "escalated", ticket=ticket.ref, rule=mail.rule, tier=mail.tier, step=mail.step, kind=queued.kind,
                   outbox=lambda: queued.id, held=held_lines(batch))  # the id the batch's commit gives it
    return 1 if queued is not None else 0


def _fire(ticket: Ticket, row: Escalation | None, decision: Decision, ruleset: Ruleset, renderer: Renderer,
          secret: bytes, now: datetime, touched: set[int], batch: Batch | None) -> int:
    """The rules that began to hold: recorded once each, absorbed or not, and their actions run."""
    if not decision.firings:
        return 0
    queued = 0
    # set on the instance: written with the evaluation's outcome (tickets.schedule / schedule_many)
    ticket.rules_fired = ladders.fired_json(decision.ladder.fired)
    incident_wide = []
    for firing in decision.firings:
        rule = firing.rule
        if firing.absorbed:
            audit.record(ticket, now, tickets.SYSTEM, "rule-absorbed", rule=rule.name, tier=rule.escalate_to,
                         ladder_tier=decision.ladder.tier, due_at=firing.at.isoformat(), batch=batch)
        elif not rule.notifies:
            audit.record(ticket, now, tickets.SYSTEM, "rule-fired", rule=rule.name, due_at=firing.at.isoformat(),
                         batch=batch)
        if rule.incident_wide:
            incident_wide.append(rule.name)
        if rule.actions:
            step = StepContext(ticket=ticket, rule=rule, ruleset=ruleset, escalation=row, step=0, due_at=firing.at,
                               now=now, renderer=renderer, secret=secret,
                               tier=ruleset.tier(rule.escalate_to) if rule.notifies else None, touched=touched,
                               batch=batch)
            for bound in rule.actions:
                queued += bound.plugin.run(step, bound.value)
    if incident_wide and ticket.incident_id is not None:
        writing(batch)
        _incident_fired(ticket.incident_id, incident_wide)
    return queued


def _incident_fired(incident_id: int, names: list[str]) -> None:
    incident = Incident.get_by_id(incident_id)
    incident.rules_fired = sorted(set(incident.rules_fired or ()) | set(names))
    rows.update(incident, "rules_fired")


@dataclass
class StepContext:
    """What a rule action sees when its rule fires on a ticket (rules/actions/), and what it can do:
    the engine's side of rules.effects.Effects."""

    ticket: Ticket
    rule: Rule
    ruleset: Ruleset
    escalation: Escalation | None  # the ticket's current ladder
    step: int
    due_at: datetime
    now: datetime
    renderer: Renderer
    secret: bytes
    tier: Tier | None
    touched: set[int] = field(default_factory=set)  # ids of other tickets the action changed
    batch: Batch | None = None  # the tick's: mail and events kept for the batch's end

    def audit(self, action: str, **detail) -> None:
        audit.record(self.ticket, self.now, tickets.SYSTEM, action, rule=self.rule.name, batch=self.batch, **detail)

    def breached(self) -> str:
        return " and ".join(bound.describe() for bound in self.rule.criteria)

    def alert_lead(self, tier: Tier) -> bool:
        return notify.queue_breach_alert(ticket=self.ticket, rule=self.rule, tier=tier, breached=self.breached(),
                                         due_at=self.due_at, ruleset=self.ruleset, renderer=self.renderer,
                                         secret=self.secret, now=self.now, step=self.step,
                                         batch=self.batch) is not None

    def ask_for_input(self, department: str, address: str, question: str) -> bool:
        return notify.queue_input_request(ticket=self.ticket, department=department, address=address,
                                          question=question, requested_by=f"rule {self.rule.name}",
                                          ruleset=self.ruleset, renderer=self.renderer, secret=self.secret,
                                          now=self.now, batch=self.batch) is not None

    def set_severity(self, severity: str) -> None:
        for ticket in self.affected_tickets():
            if ticket.severity != severity:
                tickets.set_severity(ticket, severity, by=tickets.SYSTEM, now=self.now, rule=self.rule.name,
                                     batch=self.batch)

    def affected_tickets(self) -> list[Ticket]:
        """The ticket, or for an incident rule every open ticket of the incident."""
        if not self.rule.incident_wide or self.ticket.incident_id is None:
            return [self.ticket]
        others = list(Ticket.select().where((Ticket.incident == self.ticket.incident_id)
                                            & (Ticket.id != self.ticket.id) & Ticket.status.in_(ACTIVE_STATUSES)))
        self.touched.update(other.id for other in others)
        return [self.ticket, *others]


def describe_next_step(ladder: Ladder, ruleset: Ruleset, calendar: Calendar) -> str:
    """What the ladder does next unless someone acknowledges, for the mail and `rules explain`."""
    if ladder.state != ACTIVE:
        return "No further reminders: " + {EXHAUSTED: "the ladder has run its course.",
                                          ACKNOWLEDGED: "the ticket is acknowledged."}.get(ladder.state, "nothing escalates now.")
    try:
        rule = ruleset.rule(ladder.rule) if ladder.rule else None
    except KeyError:
        rule = None
    if ladder.next_step_at is None or rule is None:
        return "No reminders follow: the rule behind this escalation does not repeat."
    when = clock.shown(ladder.next_step_at)
    upper = ruleset.next_tier(ladder.tier) if rule.next_tier_after is not None else None
    if upper is not None and ladder.step >= rule.next_tier_after:
        return f"Unless someone acknowledges, it goes to {upper.name} (tier {upper.level}) at {when}."
    if upper is None and ladder.step >= ruleset.top_reminders:
        tier = ruleset.tier(ladder.tier)
        told = f"{tier.lead} is told it went unanswered" if tier.lead else "reminders stop"
        return f"Unless someone acknowledges by {when}, {told}; no further reminders are sent."
    current = ruleset.tier(ladder.tier)
    return f"Unless someone acknowledges, reminder {ladder.step + 1} to {current.name} at {when}."
