"""The ticket state machine: the only module that changes a ticket's status (TRANSITIONS), and
with ladders.py the only one that writes escalation ladders (tests/qa/test_ticket_writes.py).

    new ──ack/agent──▶ open ──wait──▶ waiting ──customer writes──▶ open
     │                  │                │
     └──────resolve─────┴─────resolve────┴──▶ resolved ──close──▶ closed
                                               │                   │
                        open ◀── customer writes (reopen) ─────────┘

Waiting on the customer pauses the business-time clocks: `waiting_since` marks the current wait
and each finished wait is appended to `waiting_periods`, so criteria can leave it out exactly.

Every change writes an audit event in the caller's transaction, and marks the ticket due now so
the engine re-evaluates it on the next tick (a change can start or stop a clock).
"""

from __future__ import annotations

from datetime import datetime

from escalate.errors import InputError
from escalate.store import incidents as store_incidents
from escalate.store import rows
from escalate.store import tickets as store_tickets
from escalate.store.batch import Batch, writing
from escalate.store.models import ACTIVE_STATUSES, TICKET_STATUSES, Escalation, IncidentCustomer, Message, Ticket
from escalate.tickets import audit
from escalate.tickets.ladders import current_row


class TicketStateError(InputError, ValueError):
    """The action does not apply to the ticket in its current state (e.g. ack a closed ticket)."""


SYSTEM = "escalate"

# Every status change: (status, event) -> the status after it. An event a status does not list
# does not apply to it; the functions below refuse it with a TicketStateError that says why.
TRANSITIONS: dict[tuple[str, str], str] = {
    # a person takes the ticket (#ack), or an agent answers the customer: a new ticket is open
    **{(status, "acknowledge"): "open" if status == "new" else status for status in ACTIVE_STATUSES},
    **{(status, "agent-replied"): "open" if status == "new" else status for status in TICKET_STATUSES},
    # the customer writes: a wait ends, a resolved or closed ticket reopens
    **{(status, "customer-wrote"): "new" if status == "new" else "open"
       for status in TICKET_STATUSES},
    ("new", "wait"): "waiting", ("open", "wait"): "waiting",
    **{(status, "resolve"): "resolved" for status in ACTIVE_STATUSES},
    ("resolved", "close"): "closed",
    # a history import found the conversation over before its cut-off (history.py)
    ("new", "import-ended"): "closed", ("open", "import-ended"): "closed",
}


# what the refusal says a ticket must be for the event: "only resolved tickets can be closed"
_EVENT_WORDS = {"acknowledge": "be acknowledged", "resolve": "be resolved", "wait": "wait on the customer",
                "close": "be closed", "import-ended": "be closed by an import"}


def status_after(status: str, event: str, ref: str = "the ticket") -> str:
    """The status `event` leads to from `status` (simulate.py replays history with it too); a
    TicketStateError, saying which statuses the event applies to, when it does not apply."""
    try:
        return TRANSITIONS[(status, event)]
    except KeyError:
        allowed = [s for s in TICKET_STATUSES if (s, event) in TRANSITIONS]
        listed = ", ".join(allowed[:-1]) + " or " + allowed[-1] if len(allowed) > 1 else allowed[0]
        raise TicketStateError(f"{ref} is {status}; only {listed} tickets can "
                               f"{_EVENT_WORDS.get(event, event)}") from None


def _move(ticket: Ticket, event: str) -> str:
    """Move the ticket by the transition table, or refuse (TicketStateError) before anything is
    changed: call it first. Returns the status it had."""
    previous = ticket.status
    ticket.status = status_after(previous, event, ticket.ref)
    return previous


def open_ticket(*, subject: str, normalised_subject: str, requester: str, requester_name: str,
                severity: str, reference_prefix: str, now: datetime, reason: str, batch: Batch | None = None) -> Ticket:
    ticket = rows.create(
        Ticket,
        subject=subject or "(no subject)",
        normalised_subject=normalised_subject,
        requester=requester,
        requester_name=requester_name,
        status="new",
        severity=severity,
        created_at=now,
        updated_at=now,
        next_due_at=now,
    )
    ticket.ref = f"{reference_prefix}-{ticket.id}"
    rows.update(ticket, "ref")
    audit.record(ticket, now, requester, "created", severity=severity, reason=reason, batch=batch)
    return ticket


def add_message(ticket: Ticket, message: Message, now: datetime, batch: Batch | None = None) -> None:
    """Attach a stored message to its ticket and move the ticket's clocks and status.

    Writes only the columns that change (this runs for every ingested mail, and a whole-row save
    would also put back any column another writer changed meanwhile). A message inserted with
    its ticket already set (ingest does) is not written again: its row carries the raw mail."""
    if message.ticket_id != ticket.id:
        message.ticket = ticket
        rows.update(message, "ticket")
    changed = ["message_count", "updated_at", "next_due_at"]
    ticket.message_count += 1
    reopened = False
    if message.kind == "customer":
        ticket.last_customer_message_at = now
        changed.append("last_customer_message_at")
        if status_after(ticket.status, "customer-wrote") != ticket.status:  # a wait ends, a closed ticket reopens
            _end_wait(ticket, now)
            previous = _move(ticket, "customer-wrote")
            changed += ["status", "waiting_since", "waiting_periods"]
            audit.record(ticket, now, message.from_addr or "unknown", "reopened" if previous != "waiting" else "customer-replied",
                         previous=previous, message_id=message.message_id, batch=batch)
            reopened = previous != "waiting"
    elif message.kind == "agent":
        ticket.last_agent_message_at = now
        changed.append("last_agent_message_at")
        if ticket.first_response_at is None:
            ticket.first_response_at = now  # the first-response clock stops here
            changed.append("first_response_at")
    audit.record(ticket, now, message.from_addr or "unknown", "message", kind=message.kind,
                 message_id=message.message_id, subject=message.subject, batch=batch)
    _mark_due(ticket, now)
    rows.update(ticket, *changed)
    if reopened:
        _reclaim_primary(ticket, now)


def acknowledge(ticket: Ticket, by: str, now: datetime, *, via: str, tier: int | None = None,
                batch: Batch | None = None) -> None:
    """A person has taken the ticket: its ladder stops, whichever tier's mail they answered.

    `tier` is the acknowledging member's tier (None: the tier the ladder has reached). Rules that
    fire later at or below it are absorbed; a rule above it starts a new ladder (rules/ladder.py)."""
    _move(ticket, "acknowledge")
    if ticket.acknowledged_at is None:
        ticket.acknowledged_at = now
        ticket.acknowledged_by = by
    if ticket.assignee is None:
        ticket.assignee = by
    current = current_row(list(Escalation.select().where(Escalation.ticket == ticket)))  # active, else the latest
    ladder = current if current is not None and current.state == "active" else None
    level = tier if tier is not None else (ladder.tier if ladder is not None else ticket.tier)
    if ladder is not None:
        ladder.state, ladder.acknowledged_at, ladder.acknowledged_by = "acknowledged", now, by
        ladder.ack_tier, ladder.ended_at, ladder.next_step_at = level, now, None
        rows.update(ladder, "state", "acknowledged_at", "acknowledged_by", "ack_tier", "ended_at", "next_step_at")
    elif current is None or current.state != "acknowledged":
        # acknowledged with no ladder running: an acknowledged one is recorded, so rules at or below
        # the member's tier do not mail anyone about a ticket someone has taken
        rows.create(Escalation, ticket=ticket, rule="acknowledged", tier=level or 0, step=0, started_at=now,
                    last_step_due_at=now, state="acknowledged", acknowledged_at=now, acknowledged_by=by,
                    ack_tier=level, ended_at=now, reasons=[], forced=False)
    audit.record(ticket, now, by, "acknowledged", via=via, escalations_stopped=1 if ladder is not None else 0,
                 tier=level, batch=batch)
    _touch(ticket, now)


def resolve(ticket: Ticket, by: str, now: datetime, *, via: str, note: str = "", batch: Batch | None = None) -> None:
    _move(ticket, "resolve")
    _end_wait(ticket, now)
    ticket.resolved_at = now
    (Escalation.update(state="ended", ended_at=now, next_step_at=None)
     .where((Escalation.ticket == ticket) & (Escalation.state == "active")).execute())
    audit.record(ticket, now, by, "resolved", via=via, note=note, batch=batch)
    _touch(ticket, now)
    _hand_over_primary(ticket, now)


def wait_on_customer(ticket: Ticket, by: str, now: datetime, *, via: str, note: str = "",
                     batch: Batch | None = None) -> None:
    """We asked the customer something: the business-time clocks pause until they write."""
    previous = _move(ticket, "wait")
    ticket.waiting_since = now
    audit.record(ticket, now, by, "waiting", via=via, previous=previous, note=note, batch=batch)
    _touch(ticket, now)


def close(ticket: Ticket, by: str, now: datetime, *, via: str, rule: str | None = None,
          batch: Batch | None = None) -> None:
    """A resolved ticket is closed for good (a customer reply still reopens it)."""
    _move(ticket, "close")
    audit.record(ticket, now, by, "closed", rule=rule, via=via, batch=batch)
    _touch(ticket, now)


def close_imported(ticket: Ticket, *, last: datetime, now: datetime, by: str, reason: str) -> None:
    """A history import found the conversation over before its cut-off: closed as of its last
    message, never due (history.py)."""
    _move(ticket, "import-ended")
    (Ticket.update(status=ticket.status, resolved_at=last, next_due_at=None, updated_at=now)
     .where(Ticket.id == ticket.id).execute())
    audit.record(ticket, now, by, "closed", via="import", last_message_at=last.isoformat(), reason=reason)


def clear_due(ticket_ids: list[int]) -> None:
    """Tickets the engine must not evaluate (resolved, closed, drills) are not due: the tick found
    some whose due time was left behind (normally cleared with the change that idled them)."""
    Ticket.update(next_due_at=None).where(Ticket.id.in_(ticket_ids)).execute()


def set_severity(ticket: Ticket, severity: str, *, by: str, now: datetime, rule: str | None = None,
                 via: str = "rule", batch: Batch | None = None) -> None:
    """A manual change or a rule's set_severity: the clocks now count against the new targets."""
    previous = ticket.severity
    if previous == severity:
        return
    ticket.severity = severity
    audit.record(ticket, now, by, "severity-changed", rule=rule, previous=previous, severity=severity, via=via,
                 batch=batch)
    # only what changed: an incident rule sets the severity of each of its tickets (hundreds in a storm)
    _mark_due(ticket, now)
    writing(batch)  # a rule's, in a tick: the ticket's savepoint first
    rows.update(ticket, "severity", "updated_at", "next_due_at")


def request_escalation(ticket: Ticket, by: str, now: datetime, *, via: str, note: str = "",
                       batch: Batch | None = None) -> None:
    """An agent asks for escalation explicitly (#escalate): rules with escalation_requested fire."""
    if ticket.status not in ACTIVE_STATUSES:
        raise TicketStateError(f"{ticket.ref} is {ticket.status}; only new, open or waiting tickets can be escalated")
    ticket.escalation_requested_at = now
    audit.record(ticket, now, by, "escalation-requested", via=via, note=note, batch=batch)
    _touch(ticket, now)


def join_incident(ticket: Ticket, incident_id: int, now: datetime, *, similar_to: str,
                  batch: Batch | None = None) -> None:
    """incidents.py found the ticket's problem reported by other customers too.

    Costs the same whatever the incident's size: a customer is counted once, by a unique row of
    its own, and only the incident's primary ticket becomes due (its rules act on the incident and
    see the count of customers change); the other tickets' facts do not change when one joins.
    """
    ticket.incident = incident_id
    new_customer = rows.insert(IncidentCustomer, {"incident": incident_id, "requester": ticket.requester,
                                                  "joined_at": ticket.created_at}, ignore_conflict=True) is not None
    # the count, and who speaks for the incident since when, in the same statement
    customers, primary_id, primary_created = store_incidents.count_ticket(incident_id, new_customer, now)
    audit.record(ticket, now, SYSTEM, "incident-linked", incident=incident_id, similar_to=similar_to,
                 customers=customers, batch=batch)
    _mark_due(ticket, now)
    rows.update(ticket, "incident", "updated_at", "next_due_at")
    if ticket.status in ACTIVE_STATUSES and _precedes(ticket, primary_id, primary_created):
        _set_primary(incident_id, ticket.id, previous=primary_id, now=now)
    elif new_customer:  # the primary's count of customers changed (another ticket of a counted one: nothing did)
        _make_due(primary_id, now)


# An incident's primary ticket is its first active ticket (by creation): kept on the incident as
# tickets join, resolve and reopen, so evaluating a ticket never reads the incident's members.

def _precedes(ticket: Ticket, primary_id: int | None, primary_created: datetime | None = None) -> bool:
    """Whether `ticket` comes before the incident's primary (or there is none): it speaks for it.
    `primary_created`: the primary's created_at, when the caller has read it already."""
    if primary_id is None:
        return True
    if primary_id == ticket.id:
        return False
    if primary_created is None:
        primary_created = store_tickets.created_at(primary_id)
        if primary_created is None:
            return True
    return (ticket.created_at, ticket.id) < (primary_created, primary_id)


def _set_primary(incident_id: int, ticket_id: int | None, *, previous: int | None, now: datetime) -> None:
    """The incident's rules now act on `ticket_id`: it becomes due, and so does the ticket that
    stops speaking for it (its incident rules no longer hold there)."""
    store_incidents.set_primary(incident_id, ticket_id)
    for due in (ticket_id, previous):
        _make_due(due, now)


def _make_due(ticket_id: int | None, now: datetime) -> None:
    if ticket_id is not None:
        store_tickets.make_due(ticket_id, now)


def _hand_over_primary(ticket: Ticket, now: datetime) -> None:
    """`ticket` was resolved: if it spoke for its incident, the next active ticket does."""
    if ticket.incident_id is None:
        return
    if store_incidents.primary(ticket.incident_id) != (ticket.id,):
        return
    following = store_tickets.first_active_of_incident(ticket.incident_id, other_than=ticket.id)
    _set_primary(ticket.incident_id, following, previous=None, now=now)


def _reclaim_primary(ticket: Ticket, now: datetime) -> None:
    """`ticket` was reopened: if it comes first among the incident's active tickets, it speaks for it again."""
    if ticket.incident_id is None:
        return
    found = store_incidents.primary(ticket.incident_id)
    if found is not None and _precedes(ticket, found[0]):
        _set_primary(ticket.incident_id, ticket.id, previous=found[0], now=now)



def assign(ticket: Ticket, assignee: str, *, by: str, now: datetime, via: str, batch: Batch | None = None) -> None:
    """Who owns the ticket now (#assign); status does not change."""
    previous = ticket.assignee
    ticket.assignee = assignee
    audit.record(ticket, now, by, "assigned", via=via, previous=previous, assignee=assignee, batch=batch)
    ticket.updated_at = now
    ticket.save()


def snooze(ticket: Ticket, until: datetime, *, by: str, now: datetime, via: str, batch: Batch | None = None) -> None:
    """No reminders until `until` (#snooze); the engine looks again then and catches up once."""
    if ticket.status not in ACTIVE_STATUSES:
        raise TicketStateError(f"{ticket.ref} is {ticket.status}; only new, open or waiting tickets can be snoozed")
    ticket.snoozed_until = until
    audit.record(ticket, now, by, "snoozed", via=via, until=until.isoformat(), batch=batch)
    ticket.updated_at = now
    ticket.next_due_at = until
    ticket.save()


def record_customer_reply(ticket: Ticket, by: str, now: datetime, *, via: str, batch: Batch | None = None) -> None:
    """An agent answered the customer (#reply, or mail to the customer with support in Cc): the
    first-response clock stops and the ticket is open."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now
    ticket.last_agent_message_at = now
    _move(ticket, "agent-replied")
    audit.record(ticket, now, by, "customer-replied-to", via=via, batch=batch)
    _touch(ticket, now)


def add_note(ticket: Ticket, by: str, now: datetime, text: str, *, via: str, batch: Batch | None = None) -> None:
    audit.record(ticket, now, by, "note", via=via, text=text, batch=batch)
    ticket.updated_at = now
    ticket.save()


def raise_tier(ticket: Ticket, tier: int) -> None:
    """The engine escalated: remember the highest tier the ticket has reached. Raised on the
    instance; the caller writes it with the evaluation's outcome (`schedule`, or `schedule_many`
    for a tick batch, one UPDATE per ticket)."""
    ticket.tier = tier if ticket.tier is None else max(ticket.tier, tier)


def schedule(ticket: Ticket, next_due_at: datetime | None) -> None:
    """When the engine next needs to look at this ticket (None: not until something changes),
    written with the tier an evaluation raised it to (`raise_tier`) and the rules that fired."""
    ticket.next_due_at = next_due_at
    schedule_many({ticket.id: next_due_at}, {ticket.id: ticket.tier} if ticket.tier is not None else None,
                  {ticket.id: ticket.rules_fired} if ticket.rules_fired is not None else None)


def schedule_many(next_due: dict[int, datetime | None], raised: dict[int, int] | None = None,
                  fired: dict[int, dict] | None = None) -> None:
    """`schedule` for a batch of tickets (the engine's tick), the tiers its escalations raised
    them to (`raise_tier`) and the rules that fired on them: one UPDATE per ticket, in at most
    three statements."""
    raised = raised or {}
    if next_due:
        store_tickets.set_next_due(next_due, raised)  # a tier only ever goes up (store/tickets.py says why)
    # a ticket whose due time the batch left alone (an action made it due again meanwhile)
    tier_only = {ticket_id: tier for ticket_id, tier in raised.items() if ticket_id not in next_due}
    if tier_only:
        store_tickets.raise_tiers(tier_only)
    if fired:
        store_tickets.set_rules_fired(fired)


def _end_wait(ticket: Ticket, now: datetime) -> None:
    if ticket.waiting_since is not None:
        ticket.waiting_periods = list(ticket.waiting_periods or []) + [[ticket.waiting_since.isoformat(), now.isoformat()]]
        ticket.waiting_since = None


def _touch(ticket: Ticket, now: datetime) -> None:
    _mark_due(ticket, now)
    ticket.save()


def _mark_due(ticket: Ticket, now: datetime) -> None:
    ticket.updated_at = now
    # a drill (drill.py) is never the rules' work, so it never becomes due
    ticket.next_due_at = now if ticket.status in ACTIVE_STATUSES and not ticket.drill else None
