"""Decide what a notification says and queue it: render templates, build the mail, write the
outbox row — all inside the caller's transaction, so a state change and the mail announcing it
commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import peewee

from . import tokens
from .clock import iso
from .compose import build_mail
from .models import Escalation, Event, Message, Outbox, Ticket, database
from .rules.durations import format_duration
from .rules.model import Rule, Ruleset, Tier
from .templates import Renderer

SENDER_NAME = "Support escalations"
HISTORY_EVENTS = 12
LAST_MESSAGE_CHARS = 4000


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _when(value: datetime | None) -> str | None:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else None


def ticket_context(ticket: Ticket, ruleset: Ruleset, now: datetime) -> dict[str, Any]:
    try:
        severity = ruleset.severity(ticket.severity)
    except KeyError:  # the severity was removed from rules.yaml after the ticket got it
        severity = ruleset.default_severity
    display = f"{ticket.requester_name} <{ticket.requester}>" if ticket.requester_name else ticket.requester
    return {
        "ref": ticket.ref,
        "subject": ticket.subject,
        "requester": ticket.requester,
        "requester_display": display,
        "severity": ticket.severity,
        "status": ticket.status,
        "tier": ticket.tier,
        "assignee": ticket.assignee,
        "created_at": _when(ticket.created_at),
        "age": format_duration(max(now - ticket.created_at, timedelta(0))),
        "first_response_at": _when(ticket.first_response_at),
        "resolution_due_at": _when(ticket.created_at + severity.resolution) if severity.resolution else None,
        "message_count": ticket.message_count,
    }


def _last_customer_message(ticket: Ticket) -> dict[str, str] | None:
    message = (Message.select().where((Message.ticket == ticket) & (Message.kind == "customer"))
               .order_by(Message.received_at.desc(), Message.id.desc()).first())
    if message is None:
        return None
    text = (message.new_text or message.body_text or "").strip()
    if len(text) > LAST_MESSAGE_CHARS:
        text = text[:LAST_MESSAGE_CHARS] + "\n[…]"
    return {"sender": message.from_addr or "unknown", "at": _when(message.received_at), "text": text}


def _history(ticket: Ticket) -> list[dict[str, Any]]:
    events = (Event.select().where(Event.ticket == ticket).order_by(Event.at.desc(), Event.id.desc())
              .limit(HISTORY_EVENTS))
    return [{"at": _when(e.at), "actor": e.actor, "action": e.action, "rule": e.rule} for e in reversed(list(events))]


def _thread_ids(ticket: Ticket) -> list[str]:
    """The ticket's first message and our earlier notifications: what a reply's client threads on."""
    first = (Message.select(Message.message_id).where((Message.ticket == ticket) & Message.message_id.is_null(False))
             .order_by(Message.id).first())
    sent = (Outbox.select(Outbox.message_id).where(Outbox.ticket == ticket).order_by(Outbox.id.desc()).limit(10))
    ids = [first.message_id] if first else []
    ids += [row.message_id for row in reversed(list(sent))]
    return ids


def _queue(*, ticket: Ticket, kind: str, tier: Tier, subject: str, template: str, context: dict[str, Any],
           ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
           escalation: Escalation | None = None, rule: str | None = None, step: int | None = None,
           due_at: datetime | None = None) -> Outbox | None:
    rendered = renderer.render(template, context)
    message_id = tokens.new_message_id(secret, ticket.ref, tier.level, _domain(ruleset.support_address))
    thread = _thread_ids(ticket)
    raw = build_mail(
        mail_from=ruleset.support_address, from_name=SENDER_NAME, to=[tier.group], subject=subject,
        text=rendered.text, html=rendered.html, message_id=message_id, date=now,
        in_reply_to=thread[-1] if thread else None, references=thread, reply_to=ruleset.support_address,
        extra_headers={"X-Escalate-Ticket": ticket.ref},
    )
    try:
        with database.atomic():  # a savepoint: a duplicate leaves the outer transaction intact
            return Outbox.create(
                ticket=ticket, escalation=escalation, kind=kind, rule=rule, step=step, due_at=due_at,
                tier=tier.level, message_id=message_id, mail_from=ruleset.support_address,
                recipients=[tier.group], subject=subject, raw=raw, status="queued",
                next_attempt_at=now, created_at=now,
            )
    except peewee.IntegrityError:
        # this (ticket, rule, step, due) was queued already — by an earlier run of the same tick (N10)
        return None


def queue_escalation(*, ticket: Ticket, escalation: Escalation, rule: Rule, tier: Tier, step: int,
                     due_at: datetime, next_step: str, ruleset: Ruleset, renderer: Renderer,
                     secret: bytes, now: datetime, previous_tier: Tier | None) -> Outbox | None:
    is_next_tier = previous_tier is not None and previous_tier.level != tier.level
    is_repeat = step > 0 and not is_next_tier
    steps_per_tier = (rule.next_tier_after + 1) if rule.next_tier_after is not None else None
    step_in_tier = step % steps_per_tier if steps_per_tier else step
    if is_next_tier:
        label = f"Escalated to {tier.name}"
    elif is_repeat:
        label = f"Reminder {step_in_tier}, {tier.name}"
    else:
        label = f"Escalation to {tier.name}"
    subject = f"[{ticket.ref}] {label}: {ticket.subject}"
    context = {
        "ticket": ticket_context(ticket, ruleset, now),
        "rule": {"name": rule.name, "description": rule.description},
        "tier": {"level": tier.level, "name": tier.name, "group": tier.group},
        "step": step,
        "step_in_tier": step_in_tier,
        "is_repeat": is_repeat,
        "is_next_tier": is_next_tier,
        "previous_tier_name": previous_tier.name if previous_tier else None,
        "needed": "Acknowledge the ticket (reply #ack) and get the customer a response.",
        "next_step": next_step,
        "last_message": _last_customer_message(ticket),
        "history": _history(ticket),
        "support_address": ruleset.support_address,
    }
    kind = "next-tier" if is_next_tier else ("reminder" if is_repeat else "escalation")
    return _queue(ticket=ticket, kind=kind, tier=tier, subject=subject, template=rule.template, context=context,
                  ruleset=ruleset, renderer=renderer, secret=secret, now=now, escalation=escalation,
                  rule=rule.name, step=step, due_at=due_at)


def queue_confirmation(*, ticket: Ticket, tier: Tier, actor: str, action_text: str, note: str,
                       ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime) -> Outbox | None:
    """Tell the tier thread that a command took effect, so the group sees who has it."""
    context = {"ticket": ticket_context(ticket, ruleset, now), "actor": actor, "action_text": action_text,
               "note": note, "support_address": ruleset.support_address}
    subject = f"[{ticket.ref}] {action_text.capitalize()} by {actor}: {ticket.subject}"
    return _queue(ticket=ticket, kind="confirmation", tier=tier, subject=subject, template="confirmation",
                  context=context, ruleset=ruleset, renderer=renderer, secret=secret, now=now)
