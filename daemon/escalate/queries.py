"""Read-side views for the CLI and scripts: tickets, outbox and quarantine as plain dicts whose
field names are the JSON contract in DESIGN.md."""

from __future__ import annotations

from typing import Any

from .clock import iso
from .models import Escalation, Event, Message, Outbox, Quarantine, Ticket


class NotFound(LookupError):
    pass


def ticket_summary(ticket: Ticket) -> dict[str, Any]:
    return {
        "ref": ticket.ref,
        "subject": ticket.subject,
        "requester": ticket.requester,
        "status": ticket.status,
        "severity": ticket.severity,
        "tier": ticket.tier,
        "assignee": ticket.assignee,
        "created_at": iso(ticket.created_at),
        "updated_at": iso(ticket.updated_at),
        "acknowledged_at": iso(ticket.acknowledged_at),
        "acknowledged_by": ticket.acknowledged_by,
        "resolved_at": iso(ticket.resolved_at),
        "next_due_at": iso(ticket.next_due_at),
        "message_count": ticket.message_count,
    }


def list_tickets(status: str | None = None) -> list[dict[str, Any]]:
    query = Ticket.select().order_by(Ticket.id)
    if status:
        query = query.where(Ticket.status == status)
    return [ticket_summary(t) for t in query]


def get_ticket(ref: str) -> Ticket:
    ticket = Ticket.get_or_none(Ticket.ref == ref.strip().upper())
    if ticket is None:
        raise NotFound(f"no ticket {ref} (see `escalate tickets list`)")
    return ticket


def show_ticket(ref: str) -> dict[str, Any]:
    ticket = get_ticket(ref)
    detail = ticket_summary(ticket)
    detail["messages"] = [{
        "message_id": m.message_id, "kind": m.kind, "from": m.from_addr, "subject": m.subject,
        "received_at": iso(m.received_at), "sent_at": iso(m.sent_at), "text": m.new_text,
    } for m in Message.select().where(Message.ticket == ticket).order_by(Message.id)]
    detail["escalations"] = [{
        "rule": e.rule, "tier": e.tier, "step": e.step, "state": e.state, "started_at": iso(e.started_at),
        "last_step_due_at": iso(e.last_step_due_at), "acknowledged_at": iso(e.acknowledged_at),
        "acknowledged_by": e.acknowledged_by,
    } for e in Escalation.select().where(Escalation.ticket == ticket).order_by(Escalation.id)]
    detail["notifications"] = [outbox_summary(o) for o in Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id)]
    detail["events"] = [{
        "at": iso(e.at), "actor": e.actor, "action": e.action, "rule": e.rule, "detail": e.detail,
    } for e in Event.select().where(Event.ticket == ticket).order_by(Event.at, Event.id)]
    return detail


def outbox_summary(row: Outbox) -> dict[str, Any]:
    return {
        "id": row.id, "ticket": row.ticket.ref if row.ticket_id else None, "kind": row.kind, "rule": row.rule,
        "step": row.step, "tier": row.tier, "recipients": row.recipients, "subject": row.subject,
        "message_id": row.message_id, "status": row.status, "attempts": row.attempts,
        "created_at": iso(row.created_at), "next_attempt_at": iso(row.next_attempt_at),
        "sent_at": iso(row.sent_at), "last_error": row.last_error,
    }


def list_outbox(status: str | None = None) -> list[dict[str, Any]]:
    query = Outbox.select().order_by(Outbox.id)
    if status:
        query = query.where(Outbox.status == status)
    return [outbox_summary(row) for row in query]


def list_quarantine() -> list[dict[str, Any]]:
    return [{"id": q.id, "reason": q.reason, "received_at": iso(q.received_at), "folder": q.folder, "uid": q.uid,
             "size": len(q.raw)} for q in Quarantine.select().order_by(Quarantine.id)]
