"""Drills: a practice escalation that walks the real path, so a team can rehearse and see how
fast each tier answers.

`start` opens a ticket marked as a drill and queues the tier's escalation mail through the normal
outbox (notify.queue_ladder_mail, the engine's own call), so it goes out with the daemon's next
send, carries a real reply token and threads like any escalation. The tier replies `#ack` (and
`#resolve` to close it) by mail through the normal reply path; nothing here handles the reply.

A drill can never be mistaken for a real ticket: its subject — and so the subject and body of
every mail about it — starts with "DRILL", the rule that notifies is called "drill" and its
description says no customer is waiting, the ticket is flagged (Ticket.drill) so the engine's
rules never act on it, lists mark it, and the report leaves it out unless asked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from escalate.clock import iso
from escalate.errors import InputError
from escalate.ingest.conversations import normalise_subject
from escalate.outbound.notify import queue_ladder_mail
from escalate.outbound.templates import Renderer
from escalate.reports.window import durations
from escalate.rules.ladder import ACTIVE, ESCALATION, Ladder, MailStep
from escalate.rules.model import Rule, Ruleset, Tier
from escalate.store.db import write_transaction
from escalate.store.models import Escalation, Outbox, Ticket
from escalate.tickets import audit, ladders
from escalate.tickets import lifecycle as tickets

RULE_NAME = "drill"
MARK = "DRILL"


class DrillError(InputError, ValueError):
    """The drill cannot start as asked (e.g. no such tier): bad input, with what to do instead."""


def subject_for(tier_name: str, level: int) -> str:
    return f"{MARK}: practice escalation for {tier_name} (tier {level}), no customer is waiting"


def drill_rule(level: int) -> Rule:
    return Rule(
        name=RULE_NAME,
        description=(f"{MARK}: this is a practice escalation, not a real ticket. Reply #ack to this mail to record "
                     "how fast your tier responds, then #resolve to close the drill."),
        criteria=(), escalate_to=level, repeat_every=None, next_tier_after=None, template="escalation", line=0,
        source="drill")


def tier_of(ruleset: Ruleset, level: int) -> Tier:
    try:
        return ruleset.tier(level)
    except KeyError:
        levels = ", ".join(str(t.level) for t in ruleset.tiers)
        raise DrillError(f"there is no tier {level} in {ruleset.source}; the tiers are {levels}") from None


def start(ruleset: Ruleset, renderer: Renderer, secret: bytes, level: int, now: datetime, *,
          started_by: str) -> dict[str, Any]:
    """Open a drill ticket for tier `level` and queue its escalation mail, in one transaction."""
    tier = tier_of(ruleset, level)
    subject = subject_for(tier.name, tier.level)
    with write_transaction():
        ticket = tickets.open_ticket(
            subject=subject, normalised_subject=normalise_subject(subject, ruleset.reference_prefix),
            requester=ruleset.support_address, requester_name="escalate drill",
            severity=ruleset.default_severity.name, reference_prefix=ruleset.reference_prefix, now=now,
            reason="drill")
        ticket.drill = True
        ticket.save(only=[Ticket.drill])
        audit.record(ticket, now, started_by, "drill-started", rule=RULE_NAME, tier=tier.level)
        escalation = ladders.start(ticket, Ladder(state=ACTIVE, tier=tier.level, step=0, rule=RULE_NAME,
                                                  reasons=(RULE_NAME,), started_at=now, tier_since=now,
                                                  last_step_due_at=now))
        tickets.raise_tier(ticket, tier.level)
        audit.record(ticket, now, tickets.SYSTEM, "escalated", rule=RULE_NAME, tier=tier.level, step=0,
                     due_at=now.isoformat())
        row = queue_ladder_mail(
            ticket=ticket, escalation=escalation, rule=drill_rule(tier.level),
            step=MailStep(kind=ESCALATION, tier=tier.level, step=0, due_at=now, rule=RULE_NAME, reasons=(RULE_NAME,)),
            next_step=f"{MARK}: no reminders follow and no other tier is told.", ruleset=ruleset, renderer=renderer,
            secret=secret, now=now)
        tickets.schedule(ticket, None)  # the engine never evaluates drills; nothing is due (writes the tier)
    return {"ref": ticket.ref, "tier": tier.level, "tier_name": tier.name, "group": tier.group,
            "outbox_id": row.id if row else None, "outbox_status": row.status if row else None,
            "message_id": row.message_id if row else None,
            "started_at": iso(now)}


def results(ruleset: Ruleset) -> dict[str, Any]:
    """Every drill with when its mail went out and when (and by whom) it was acknowledged; and per
    tier how many drills, how many acknowledged, the median and the slowest time to #ack."""
    rows = list(Escalation.select(Escalation, Ticket)
                .join(Ticket, on=(Escalation.ticket == Ticket.id))
                .where((Ticket.drill == True) & (Escalation.rule == RULE_NAME))  # noqa: E712
                .order_by(Escalation.started_at, Escalation.id))
    sent = {}
    if rows:
        for ticket_id, sent_at in (Outbox.select(Outbox.ticket, Outbox.sent_at)
                                   .where(Outbox.ticket.in_([r.ticket_id for r in rows]) & (Outbox.rule == RULE_NAME)
                                          & Outbox.sent_at.is_null(False)).order_by(Outbox.id).tuples()):
            sent.setdefault(ticket_id, sent_at)
    drills = []
    for e in rows:
        mailed = sent.get(e.ticket_id)
        # from the moment the mail left (what the tier could react to); from the start if not sent yet
        seconds = ((e.acknowledged_at - (mailed or e.started_at)).total_seconds()
                   if e.acknowledged_at is not None else None)
        drills.append({"ref": e.ticket.ref, "tier": e.tier, "started_at": iso(e.started_at), "sent_at": iso(mailed),
                       "acknowledged_at": iso(e.acknowledged_at), "acknowledged_by": e.acknowledged_by,
                       "seconds_to_ack": None if seconds is None else max(0.0, seconds),
                       "status": e.ticket.status})
    tiers = []
    for level in sorted({d["tier"] for d in drills}):
        mine = [d for d in drills if d["tier"] == level]
        times = [d["seconds_to_ack"] for d in mine if d["seconds_to_ack"] is not None]
        try:
            name = ruleset.tier(level).name
        except KeyError:
            name = f"tier {level}"
        tiers.append({"tier": level, "name": name, "drills": len(mine), "acknowledged": len(times),
                      "median_seconds": durations(times)["median_seconds"],
                      "slowest_seconds": max(times) if times else None,
                      "last_started_at": mine[-1]["started_at"]})
    return {"tiers": tiers, "drills": drills}
