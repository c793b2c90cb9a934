"""The ticket state machine: the only module that changes a ticket's status.

    new ──ack──▶ open ◀──customer writes── waiting
     │            │  ▲                        ▲
     │            │  └──── customer writes ───┤
     └──resolve──▶ resolved ───────────────── ┘ (a customer reply reopens)
                   │
                   └──close──▶ closed

Every change writes an audit event in the caller's transaction, and marks the ticket due now so
the engine re-evaluates it on the next tick (a change can start or stop a clock).
"""

from __future__ import annotations

from datetime import datetime

from . import audit
from .models import ACTIVE_STATUSES, Escalation, Message, Ticket


class TicketStateError(ValueError):
    """The action does not apply to the ticket in its current state (e.g. ack a closed ticket)."""


SYSTEM = "escalate"


def open_ticket(*, subject: str, normalised_subject: str, requester: str, requester_name: str,
                severity: str, reference_prefix: str, now: datetime, reason: str) -> Ticket:
    ticket = Ticket.create(
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
    ticket.save(only=[Ticket.ref])
    audit.record(ticket, now, requester, "created", severity=severity, reason=reason)
    return ticket


def add_message(ticket: Ticket, message: Message, now: datetime) -> None:
    """Attach a stored message to its ticket and move the ticket's clocks and status."""
    message.ticket = ticket
    message.save(only=[Message.ticket])
    ticket.message_count += 1
    ticket.updated_at = now
    if message.kind == "customer":
        ticket.last_customer_message_at = now
        if ticket.status in ("resolved", "closed", "waiting"):
            previous = ticket.status
            ticket.status = "open"
            audit.record(ticket, now, message.from_addr or "unknown", "reopened" if previous != "waiting" else "customer-replied",
                         previous=previous, message_id=message.message_id)
    elif message.kind == "agent":
        ticket.last_agent_message_at = now
    audit.record(ticket, now, message.from_addr or "unknown", "message", kind=message.kind,
                 message_id=message.message_id, subject=message.subject)
    _touch(ticket, now)


def acknowledge(ticket: Ticket, by: str, now: datetime, *, via: str) -> None:
    """A person has taken the ticket: every running escalation stops repeating."""
    if ticket.status not in ACTIVE_STATUSES:
        raise TicketStateError(f"{ticket.ref} is {ticket.status}; only new, open or waiting tickets can be acknowledged")
    if ticket.acknowledged_at is None:
        ticket.acknowledged_at = now
        ticket.acknowledged_by = by
    if ticket.assignee is None:
        ticket.assignee = by
    if ticket.status == "new":
        ticket.status = "open"
    stopped = (Escalation.update(state="acknowledged", acknowledged_at=now, acknowledged_by=by)
               .where((Escalation.ticket == ticket) & (Escalation.state == "active")).execute())
    audit.record(ticket, now, by, "acknowledged", via=via, escalations_stopped=stopped)
    _touch(ticket, now)


def resolve(ticket: Ticket, by: str, now: datetime, *, via: str, note: str = "") -> None:
    if ticket.status in ("resolved", "closed"):
        raise TicketStateError(f"{ticket.ref} is already {ticket.status}")
    ticket.status = "resolved"
    ticket.resolved_at = now
    (Escalation.update(state="ended").where((Escalation.ticket == ticket) & (Escalation.state == "active")).execute())
    audit.record(ticket, now, by, "resolved", via=via, note=note)
    _touch(ticket, now)


def add_note(ticket: Ticket, by: str, now: datetime, text: str, *, via: str) -> None:
    audit.record(ticket, now, by, "note", via=via, text=text)
    ticket.updated_at = now
    ticket.save()


def record_escalation_step(ticket: Ticket, escalation: Escalation, *, tier: int, step: int,
                           due_at: datetime, now: datetime) -> None:
    """The engine escalated (or re-notified): remember the tier the ticket has reached."""
    previous_tier = ticket.tier
    ticket.tier = tier if previous_tier is None else max(previous_tier, tier)
    escalation.tier = tier
    escalation.step = step
    escalation.last_step_due_at = due_at
    escalation.save()
    action = "escalated" if step == 0 else ("escalated-next-tier" if previous_tier is not None and tier > previous_tier else "reminded")
    audit.record(ticket, now, SYSTEM, action, rule=escalation.rule, tier=tier, step=step, due_at=due_at.isoformat())
    ticket.save()


def end_escalation(ticket: Ticket, escalation: Escalation, now: datetime, why: str) -> None:
    """A rule stopped holding (e.g. the first response arrived): its repeats stop."""
    escalation.state = "ended"
    escalation.save()
    audit.record(ticket, now, SYSTEM, "escalation-ended", rule=escalation.rule, why=why)


def schedule(ticket: Ticket, next_due_at: datetime | None) -> None:
    """When the engine next needs to look at this ticket (None: not until something changes)."""
    ticket.next_due_at = next_due_at
    ticket.save(only=[Ticket.next_due_at])


def _touch(ticket: Ticket, now: datetime) -> None:
    ticket.updated_at = now
    ticket.next_due_at = now if ticket.status in ACTIVE_STATUSES else None
    ticket.save()
