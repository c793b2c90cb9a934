"""Read-side views for the CLI and scripts: tickets, outbox and quarantine as plain dicts whose
field names are the JSON contract of the CLI's --json output."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

import peewee

from escalate.clock import iso
from escalate.errors import InputError
from escalate.store.models import Delivery, Escalation, Event, Message, Outbox, Quarantine, Ticket
from escalate.tickets import ladders


class NotFound(InputError, LookupError):
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
        "drill": bool(ticket.drill),  # a practice escalation (drill.py), not a customer's ticket
    }


def with_ladders(summaries: list[dict[str, Any]], tickets: list[Ticket]) -> list[dict[str, Any]]:
    """Each summary with its ticket's ladder state ("active", "acknowledged", "exhausted", "ended",
    or None: never escalated), read for all of them in one query per chunk."""
    states: dict[int, tuple[bool, int, str]] = {}
    ids = [t.id for t in tickets]
    for start in range(0, len(ids), 900):  # SQLite's limit on bound parameters
        for ticket_id, row_id, state in (Escalation.select(Escalation.ticket, Escalation.id, Escalation.state)
                                         .where(Escalation.ticket.in_(ids[start:start + 900])).tuples()):
            key = (state == "active", row_id, state)  # the current ladder: the active one, else the latest
            if ticket_id not in states or key > states[ticket_id]:
                states[ticket_id] = key
    for summary, ticket in zip(summaries, tickets):
        summary["ladder"] = states[ticket.id][2] if ticket.id in states else None
    return summaries


# `tickets list --sort KEY`: the column each key orders by (ties broken by id, oldest first)
TICKET_SORTS = {
    "created": Ticket.id, "updated": Ticket.updated_at, "due": Ticket.next_due_at, "tier": Ticket.tier,
    "status": Ticket.status, "requester": Ticket.requester, "severity": Ticket.severity, "messages": Ticket.message_count,
}


MAX_IN_LIST = 20_000  # ids bound as SQL parameters at most (SQLite allows 32,766 since 3.32)


@dataclass
class TicketFilter:
    """What `tickets list` narrows by; every field left empty matches all tickets."""

    statuses: tuple[str, ...] = ()
    tiers: tuple[int, ...] = ()
    severities: tuple[str, ...] = ()
    requester: str | None = None  # part of the address: "carl@", "@acme.example"
    text: str | None = None  # in the subject or in any message of the ticket
    only_ids: set[int] | None = None  # e.g. the overdue tickets (sla.overdue_ids)
    drills: bool = True  # include drill tickets (marked) or leave them out


def find_tickets(where: TicketFilter, *, sort: str = "created", descending: bool = False,
                 severity_rank: list[str] | None = None, limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Tickets matching `where`, sorted; returns (up to `limit` of them, how many match)."""
    found, total = stream_tickets(where, sort=sort, descending=descending, severity_rank=severity_rank, limit=limit)
    return list(found), total


def stream_tickets(where: TicketFilter, *, sort: str = "created", descending: bool = False,
                   severity_rank: list[str] | None = None,
                   limit: int | None = None) -> tuple[Iterator[dict[str, Any]], int]:
    """`find_tickets`, the tickets read one at a time as the caller takes them (`tickets list
    --limit 0` over tens of thousands writes each out and keeps none)."""
    condition = peewee.Value(1) == 1
    if where.statuses:
        condition &= Ticket.status.in_(where.statuses)
    if where.tiers:
        condition &= Ticket.tier.in_(where.tiers)
    if where.severities:
        condition &= Ticket.severity.in_(where.severities)
    if where.requester:
        condition &= Ticket.requester.contains(where.requester.strip().lower())
    if where.text:
        in_messages = Message.select(Message.ticket).where(Message.body_text.contains(where.text))
        condition &= (Ticket.subject.contains(where.text) | Ticket.id.in_(in_messages))
    if not where.drills:
        condition &= (Ticket.drill == False)  # noqa: E712 -- peewee builds SQL from ==
    if sort == "severity" and severity_rank:
        # the rules list severities most severe first: sort by that order, not alphabetically
        key = peewee.Case(Ticket.severity, [(name, i) for i, name in enumerate(severity_rank)], len(severity_rank))
    else:
        key = TICKET_SORTS[sort]
    order = [key.desc(nulls="LAST") if descending else key.asc(nulls="LAST"), Ticket.id]
    if where.only_ids is not None and len(where.only_ids) <= MAX_IN_LIST:
        condition &= Ticket.id.in_(sorted(where.only_ids))
    query = Ticket.select().where(condition).order_by(*order)
    if where.only_ids is not None and len(where.only_ids) > MAX_IN_LIST:
        # a very large computed set is applied here rather than as a huge IN (...) in SQL
        matched = [t for t in query.iterator() if t.id in where.only_ids]
        return _with_ladders_streamed(iter(matched[:limit] if limit else matched)), len(matched)
    total = query.count()
    return _with_ladders_streamed((query.limit(limit) if limit else query).iterator()), total


def _with_ladders_streamed(tickets: Iterator[Ticket]) -> Iterator[dict[str, Any]]:
    """Summaries with their ladder state, a chunk of tickets at a time (one query per chunk), so a
    listing of tens of thousands still holds only a chunk."""
    while chunk := list(itertools.islice(tickets, 500)):
        yield from with_ladders([ticket_summary(t) for t in chunk], chunk)


def get_ticket(ref: str) -> Ticket:
    ticket = Ticket.get_or_none(Ticket.ref == ref.strip().upper())
    if ticket is None:
        raise NotFound(f"no ticket {ref} (see `escalate tickets list`)")
    return ticket


def show_ticket(ref: str, ruleset=None) -> dict[str, Any]:
    ticket = get_ticket(ref)
    detail = ticket_summary(ticket)
    detail["messages"] = [{
        "message_id": m.message_id, "kind": m.kind, "from": m.from_addr, "subject": m.subject,
        "received_at": iso(m.received_at), "sent_at": iso(m.sent_at), "text": m.new_text,
    } for m in Message.select().where(Message.ticket == ticket).order_by(Message.id)]
    escalations = list(Escalation.select().where(Escalation.ticket == ticket).order_by(Escalation.id))
    detail["escalations"] = [{
        "rule": e.rule, "tier": e.tier, "step": e.step, "state": e.state, "started_at": iso(e.started_at),
        "last_step_due_at": iso(e.last_step_due_at), "acknowledged_at": iso(e.acknowledged_at),
        "acknowledged_by": e.acknowledged_by, "reasons": e.reasons or [e.rule], "next_step_at": iso(e.next_step_at),
        "forced": bool(e.forced), "ended_at": iso(e.ended_at),
    } for e in escalations]
    # the current ladder: its state ("exhausted" when it ran its course unanswered), tier, reminders, why
    detail["ladder"] = ladders.summary(ladders.ladder_of(ticket, escalations), ruleset)
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


def list_outbox(status: str | None = None, *, since: datetime | None = None,
                limit: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """The outbox rows in `status` queued from `since` on, oldest first: with a `limit`, the
    `limit` newest of them. Returns them and how many there are in all."""
    query = Outbox.select()
    if status:
        query = query.where(Outbox.status == status)
    if since is not None:
        query = query.where(Outbox.created_at >= since)
    total = query.count()
    newest = query.order_by(Outbox.id.desc()).limit(limit) if limit else query.order_by(Outbox.id.desc())
    return [outbox_summary(row) for row in reversed(list(newest))], total


def show_outbox(outbox_id: int) -> dict[str, Any]:
    """One outbox row with each recipient's delivery: status, attempts, SMTP code and error."""
    row = Outbox.get_or_none(Outbox.id == outbox_id)
    if row is None:
        raise NotFound(f"no outbox row {outbox_id} (see `escalate outbox list`)")
    detail = outbox_summary(row)
    detail["deliveries"] = [{
        "recipient": d.recipient, "mail_from": d.mail_from, "status": d.status, "attempts": d.attempts,
        "next_attempt_at": iso(d.next_attempt_at), "sent_at": iso(d.sent_at), "failed_at": iso(d.failed_at),
        "code": d.code, "last_error": d.last_error,
    } for d in Delivery.select().where(Delivery.outbox == row).order_by(Delivery.id)]
    return detail


def list_quarantine() -> list[dict[str, Any]]:
    # each mail's size from the database, not its bytes read back (a quarantine can hold many large mails)
    size = peewee.fn.LENGTH(Quarantine.raw).alias("size")
    rows = Quarantine.select(Quarantine.id, Quarantine.reason, Quarantine.received_at, Quarantine.folder,
                             Quarantine.uid, size).order_by(Quarantine.id)
    return [{"id": q.id, "reason": q.reason, "received_at": iso(q.received_at), "folder": q.folder, "uid": q.uid,
             "size": q.size} for q in rows]
