"""Decide what a notification says and queue it: its template and variables, recipients,
Message-ID and reply token, written as an outbox row with one delivery per recipient — all inside
the caller's transaction, so a state change and the mail announcing it commit together or not at
all. The sender renders the row into MIME bytes before sending it (render.py).

Recipients always come from the rules (a tier's group, its lead, a consulted department, the
informed list) or from the stored ticket (the customer), never from a message's headers:
the envelope is exactly the roster.
Before anything is queued the loop caps are checked (ratelimit.py); capped mail is recorded as
"suppressed" with the reason and an audit event, never dropped silently.
"""

from __future__ import annotations

import collections
import email
import email.policy
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from escalate import clock
from escalate.clock import parse_time
from escalate.mail import tokens, verp
from escalate.outbound import chat, ratelimit
from escalate.outbound.templates import Renderer
from escalate.rules import clocks
from escalate.rules.durations import age_text, format_duration
from escalate.rules.facts import TicketFacts
from escalate.rules.ladder import ESCALATION, NEXT_TIER, REMINDER, UNANSWERED, MailStep
from escalate.rules.model import Rule, Ruleset, Severity, Tier, normalise_address
from escalate.store import messages as store_messages
from escalate.store import rows
from escalate.store import tickets as store_tickets
from escalate.store.models import Delivery, Escalation, Incident, Message, Outbox, Ticket, load_json
from escalate.tickets import audit, ladders

if TYPE_CHECKING:
    from escalate.store.batch import Batch

log = logging.getLogger(__name__)

SENDER_NAME = "Support escalations"
HISTORY_EVENTS = 12
LAST_MESSAGE_CHARS = 4000
DEFAULT_TEMPLATE = "escalation"  # a rule that keeps the default gets the kind's own template per step
ESCALATION_KINDS = ("escalation", "reminder", "next-tier")


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _when(value: datetime | None) -> str | None:
    """A time in a mail: the team's zone, with its abbreviation."""
    return clock.shown(value) if value else None


def resolution_due(ticket: Ticket, severity: Severity, ruleset: Ruleset) -> datetime | None:
    """When the ticket's resolution target falls due, as the engine counts it: the severity's
    calendar (business hours, holidays) from creation, waits on the customer left out. None
    without a target, or while the ticket waits on the customer (the clock is paused)."""
    if severity.resolution is None:
        return None
    facts = TicketFacts(
        status=ticket.status, severity=severity.name, tier=ticket.tier, created_at=ticket.created_at,
        first_response_at=ticket.first_response_at, last_customer_message_at=ticket.last_customer_message_at,
        last_agent_message_at=ticket.last_agent_message_at, acknowledged=ticket.acknowledged_at is not None,
        waiting_periods=tuple((parse_time(a), parse_time(b)) for a, b in (ticket.waiting_periods or [])),
        waiting_since=ticket.waiting_since)
    return clocks.due(facts, ruleset, ticket.created_at, severity.resolution)


def ticket_context(ticket: Ticket, ruleset: Ruleset, now: datetime) -> dict[str, Any]:
    try:
        severity = ruleset.severity(ticket.severity)
    except KeyError:  # the severity was removed from rules.yaml after the ticket got it
        severity = ruleset.default_severity
    display = f"{ticket.requester_name} <{ticket.requester}>" if ticket.requester_name else ticket.requester
    due = resolution_due(ticket, severity, ruleset)
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
        "age": age_text(now - ticket.created_at),
        "first_response_at": _when(ticket.first_response_at),
        "resolution_due_at": _when(due),
        # a target that has passed says so: the mail is read later than it was decided, never as if in time
        "resolution_overdue": format_duration(now - due) if due is not None and due <= now else None,
        "resolved_at": _when(ticket.resolved_at),
        "message_count": ticket.message_count,
    }


# What a mail shows of the ticket's past — its last customer message and its latest audit events —
# is read when the mail is rendered (render.py), as it stood when the mail was decided: messages
# received and events recorded up to the outbox row's `created_at`. Both are append-only and
# stamped with the time they were stored, so that reading gives what the tick would have read
# (plus any event recorded at that very moment after the mail, such as its lead's alert), and a
# tick spends nothing on them: they were a sixth of an escalating tick's time. The context names
# what is to be filled in under DERIVED (`_as_of`); rows stored before kept the values themselves.
DERIVED = "_as_of_decision"

def _as_of(context: dict[str, Any], *names: str) -> dict[str, Any]:
    """`context`, with `names` (of DERIVERS) to be filled in by the renderer as of the decision."""
    context[DERIVED] = list(names)
    return context


def last_customer_message(ticket_id: int, as_of: datetime) -> dict[str, str] | None:
    """The ticket's latest customer message received by `as_of`, as a mail shows it."""
    found = store_messages.last_from_customer(ticket_id, as_of)
    if found is None:
        return None
    new_text, body_text, from_addr, received_at = found
    # new_text is the message without its quoted history (parse.py strips it)
    text = (new_text or body_text or "").strip()
    if len(text) > LAST_MESSAGE_CHARS:
        text = text[:LAST_MESSAGE_CHARS] + "\n[…]"
    return {"sender": from_addr or "unknown", "at": _when(received_at), "text": text}


def history(ticket_id: int, as_of: datetime) -> list[dict[str, Any]]:
    """What happened to the ticket, oldest first, as a person reads it: the last HISTORY_EVENTS
    audit events recorded by `as_of` (at equal times in the order they were written), in words
    rather than internal event names, bookkeeping left out, and a run of the same step collapsed
    into one line ("Frontline reminded 3 times since 10:00")."""
    found = store_tickets.history(ticket_id, as_of, HISTORY_EVENTS)
    shown: list[dict[str, Any]] = []
    for at, actor, action, rule, detail in reversed(found):
        words = event_text(action, load_json(detail) if isinstance(detail, str) else (detail or {}))
        if words is None:
            continue
        last = shown[-1] if shown else None
        if last is not None and (last["action"], last["words"], last["actor"]) == (action, words, actor):
            last["times"] += 1  # the line keeps the first one's time
            last["text"] = f"{words} {last['times']} times since {last['at']}"
            continue
        shown.append({"at": _when(at), "actor": actor, "action": action, "rule": rule,
                      "words": words, "text": words, "times": 1})
    return shown


# Audit events as a mail's history says them; None: bookkeeping a reader does not need
_EVENT_TEXT: dict[str, str | None] = {
    "created": "ticket opened", "message": "{kind} message", "reopened": "reopened by the customer",
    "customer-replied": "the customer replied", "customer-replied-to": "an agent answered the customer",
    "escalated": "escalated to tier {tier}", "escalated-next-tier": "moved up to tier {tier}",
    "reminded": "tier {tier} reminded", "ladder-exhausted": "nobody acknowledged; reminders stopped",
    "escalation-ended": "escalation ended: {why}", "acknowledged": "acknowledged", "resolved": "resolved",
    "closed": "closed", "waiting": "waiting on the customer", "note": "internal note",
    "assigned": "assigned to {assignee}", "snoozed": "snoozed until {until}",
    "escalation-requested": "escalation requested", "severity-changed": "severity changed to {severity}",
    "incident-linked": "linked to an incident of {customers} customers", "lead-alerted": "lead told of a breach",
    "input-requested": "input asked from {department}", "rule-fired": "rule {rule} fired",
    "command-refused": "a reply's commands were refused", "command-failed": "a command could not be applied",
    "drill-started": "drill started",
    "rule-absorbed": None, "notification-suppressed": None, "command-unknown": None, "escalation-details": None,
    "acknowledgement-skipped": None, "digest": None, "acknowledgement-queued": None,
}


def event_text(action: str, detail: dict[str, Any]) -> str | None:
    template = _EVENT_TEXT.get(action, action.replace("-", " "))
    if template is None:
        return None
    try:
        return template.format(**{key: value for key, value in detail.items() if value is not None})
    except (KeyError, IndexError, ValueError):  # an older event without the detail: its plain words
        return action.replace("-", " ")


DERIVERS: dict[str, Callable[[int, datetime], Any]] = {"last_message": last_customer_message, "history": history}


def template_variables(context: dict[str, Any] | None, ticket_id: int | None, decided_at: datetime) -> dict[str, Any]:
    """An outbox row's stored context with what it left to the renderer filled in (render.py)."""
    variables = dict(context or {})
    for name in variables.pop(DERIVED, ()):
        variables[name] = DERIVERS[name](ticket_id, decided_at) if ticket_id is not None else None
    return variables


class BatchLookups:
    """What the loop cap reads for every due ticket of one tick batch, with one query the first
    time a mail of the batch needs it (none when nothing escalates)."""

    def __init__(self, ticket_ids: list[int]):
        self.ticket_ids, self.covered = ticket_ids, frozenset(ticket_ids)
        self.recent: dict[int, list[datetime]] = {}  # recent_mail, read for one window start
        self.recent_since: datetime | None = None

    def recent_mail(self, ticket_id: int, now: datetime, caps: ratelimit.Caps) -> list[datetime] | None:
        """The ticket's counted mails within its cap's window (ratelimit.ticket_cap), read for the
        whole batch with one query; None for a ticket outside the batch (the cap reads its own)."""
        if ticket_id not in self.covered:
            return None
        since = now - ratelimit.ticket_window(caps)
        if self.recent_since != since:
            self.recent = ratelimit.tickets_mail_times(self.ticket_ids, since)
            self.recent_since = since
        return self.recent.get(ticket_id, [])


def thread_ids(ticket_id: int | None, before_outbox_id: int | None = None) -> list[str]:
    """The ticket's first message and our earlier notifications (the last ten before
    `before_outbox_id`, when given): what a reply's client threads on."""
    if ticket_id is None:
        return []
    first = (Message.select(Message.message_id).where((Message.ticket == ticket_id) & Message.message_id.is_null(False))
             .order_by(Message.id).first())
    sent = Outbox.select(Outbox.message_id).where(Outbox.ticket == ticket_id)
    if before_outbox_id is not None:
        sent = sent.where(Outbox.id < before_outbox_id)
    ids = [first.message_id] if first else []
    ids += [row.message_id for row in reversed(list(sent.order_by(Outbox.id.desc()).limit(10)))]
    return ids


def _cap_reason(recipient: str, kind: str, ruleset: Ruleset, now: datetime, caps: ratelimit.Caps,
                ticket_reason: str | None, batch: DeferredMail | None) -> str | None:
    """Why `recipient` must not get this mail (a cap), or None; `batch`: a tick's pending mail."""
    if ticket_reason:
        return ticket_reason
    if batch is not None:
        dead = batch.dead.get(recipient, False)
        if dead is False:  # asked once per batch: no delivery is refused or bounces during a tick
            dead = batch.dead[recipient] = ratelimit.dead_address(recipient, now, caps)
    else:
        dead = ratelimit.dead_address(recipient, now, caps)
    if dead:
        return dead
    if kind == "acknowledgement":
        return ratelimit.address_cap(recipient, now, caps.acknowledgements_per_address, kinds=("acknowledgement",))
    limit = ruleset.group_mails_per_hour
    if limit and kind in ratelimit.LADDER_KINDS and recipient in ruleset.group_addresses:
        if batch is None:
            return ratelimit.group_ceiling(recipient, now, ratelimit.group_times(recipient, now, limit), limit)
        if recipient not in batch.group_times:  # read once per batch: the tick's own mail counts as `also`
            batch.group_times[recipient] = ratelimit.group_times(recipient, now, limit)
        return ratelimit.group_ceiling(recipient, now, batch.group_times[recipient], limit,
                                       also=batch.per_address[recipient])
    if recipient not in ruleset.team_addresses:
        return ratelimit.address_cap(recipient, now, caps.per_address,
                                     also=batch.per_address[recipient] if batch is not None else 0)
    return None


# -- a tick's batch: its notifications written together -------------------------------------------

class DeferredMail:
    """The notifications one tick batch decides, and the escalations they belong to, written
    together when the batch ends: one multi-row INSERT for the new escalations, one for the outbox
    rows and one for their deliveries, instead of three statements per escalating ticket. The loop
    caps count what is pending; a ticket whose evaluation fails drops its pending escalations and
    mail with its savepoint (batch.Unit calls `mark`/`rollback`)."""

    def __init__(self, secret: bytes):
        self.secret = secret
        self.rows: list[tuple[dict[str, Any], list[str], dict[str, str]]] = []  # values, recipients, suppressed
        # new escalations, without an id until written: their outbox rows refer to them, so they go first
        self.escalations: list[Escalation] = []
        self.dead: dict[str, str | None] = {}  # recipient -> dead-address reason, asked once per batch
        self.group_times: dict[str, list] = {}  # tier group -> its recent ladder mails (the hourly ceiling)
        self.per_ticket: collections.Counter[int] = collections.Counter()
        self.per_address: collections.Counter[str] = collections.Counter()
        self.lookups = BatchLookups([])  # the engine names the batch's tickets (`look_up`)
        self.template_names: set[str] | None = None  # _template_names
        self.unsaved: dict[str, Outbox] = {}  # message_id -> the instance `_queue` returned

    def look_up(self, ticket_ids: list[int]) -> None:
        """The batch's due tickets: their mails' lookups are read for all of them at once."""
        self.lookups = BatchLookups(list(dict.fromkeys(ticket_ids)))

    def add(self, values: dict[str, Any], recipients: list[str], suppressed: dict[str, str],
            row: Outbox | None = None) -> None:
        """`row`: the unsaved instance the caller holds, given its id when written (the log line)."""
        self.rows.append((values, recipients, suppressed))
        if row is not None:
            self.unsaved[values["message_id"]] = row
        self._count(values, recipients, suppressed, 1)

    def _count(self, values: dict[str, Any], recipients: list[str], suppressed: dict[str, str], sign: int) -> None:
        if values["status"] != "suppressed" and values["ticket"] is not None:
            self.per_ticket[values["ticket"].id] += sign
        for recipient in recipients:
            if recipient not in suppressed:
                self.per_address[recipient] += sign

    def add_escalation(self, escalation: Escalation) -> None:
        self.escalations.append(escalation)

    def mark(self) -> tuple[int, int]:
        return len(self.rows), len(self.escalations)

    def rollback(self, mark: tuple[int, int]) -> None:
        rows_mark, escalations_mark = mark
        for values, recipients, suppressed in self.rows[rows_mark:]:
            self._count(values, recipients, suppressed, -1)
        del self.rows[rows_mark:]
        del self.escalations[escalations_mark:]

    def flush(self, batch: Batch) -> int:
        """Write the pending rows (inside the batch's transaction), their suppressions' events kept
        in `batch`; returns how many were already queued (the unique key keeps the first) and so
        were not written again."""
        self._write_escalations()
        pending, self.rows = self.rows, []
        self.per_ticket.clear()
        self.per_address.clear()
        duplicates = 0
        for start in range(0, len(pending), FLUSH_ROWS):
            chunk = pending[start:start + FLUSH_ROWS]
            ids = dict(rows.insert_returning(Outbox, [values for values, _, _ in chunk], "message_id",
                                                 ignore_conflict=True))
            deliveries = []
            for values, recipients, suppressed in chunk:
                row_id = ids.get(values["message_id"])
                if values["message_id"] in self.unsaved:
                    self.unsaved.pop(values["message_id"]).id = row_id
                if row_id is None:
                    duplicates += 1
                    continue
                deliveries += _deliveries(row_id, values, recipients, suppressed, self.secret)
                if suppressed:
                    _record_suppressed(Outbox(id=row_id, **values), suppressed, batch)
            rows.insert_many(Delivery, deliveries)  # _deliveries gives every column with a default
        return duplicates

    def _write_escalations(self) -> None:
        pending, self.escalations = self.escalations, []
        ladders.insert_pending(pending)


FLUSH_ROWS = 100  # outbox rows per INSERT: well inside SQLite's limit of 32,766 parameters


def new_escalation(ticket: Ticket, ladder, batch: Batch | None = None) -> Escalation:
    """A ticket's new ladder (ladders.start), in a tick batch written with the batch's mail."""
    mail = batch.mail if batch is not None else None
    return ladders.start(ticket, ladder, mail.escalations if mail is not None else None)


def _template_names(renderer: Renderer, batch: Batch | None) -> set[str]:
    """renderer.names(), asked once per tick batch: it stats the template directories each time."""
    mail = batch.mail if batch is not None else None
    if mail is None:
        return renderer.names()
    if mail.template_names is None:
        mail.template_names = renderer.names()
    return mail.template_names


def _deliveries(row_id: int, values: dict[str, Any], recipients: list[str], suppressed: dict[str, str],
                secret: bytes) -> list[dict[str, Any]]:
    """Delivery rows with every column that has a default (status, attempts) given: a tick batch
    writes them with rows.insert_many, which fills in no model defaults."""
    now = values["created_at"]
    mail = [{"outbox": row_id, "recipient": r,
             "mail_from": verp.return_path(values["mail_from"], row_id, i, r, secret),
             "status": "suppressed" if r in suppressed else "rendering", "last_error": suppressed.get(r),
             "attempts": 0, "next_attempt_at": now, "created_at": now} for i, r in enumerate(recipients)]
    # chat posts need no rendered mail: queued at once, so a broken template never holds up chat
    posts = [{"outbox": row_id, "recipient": r, "mail_from": "",
              "status": "suppressed" if r in suppressed else "queued", "last_error": suppressed.get(r),
              "attempts": 0, "next_attempt_at": now, "created_at": now}
             for r in ((values.get("headers") or {}).get("chat") or {}).get("to", ())]
    return mail + posts


def _record_suppressed(row: Outbox, suppressed: dict[str, str], batch: Batch | None) -> None:
    audit.record(row.ticket, row.created_at, "escalate", "notification-suppressed", rule=row.rule, outbox=row.id,
                 kind=row.kind, reasons=suppressed, batch=batch)
    reasons = "; ".join(set(suppressed.values()))
    # held for a group's summary is the ceiling doing its work (counted in status and metrics), not
    # a warning per mail: a flood would write thousands of them
    level = logging.INFO if ratelimit.GROUP_CEILING in reasons else logging.WARNING
    log.log(level, "suppressed %s %s to %s: %s", row.kind, row.id, ", ".join(suppressed), reasons)


def _queue(*, ticket: Ticket | None, kind: str, recipients: list[str], subject: str, template: str,
           context: dict[str, Any], ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
           tier_level: int | None = None, escalation: Escalation | None = None, rule: str | None = None,
           step: int | None = None, due_at: datetime | None = None,
           caps: ratelimit.Caps = ratelimit.DEFAULT_CAPS, thread: list[str] | None = None,
           batch: Batch | None = None) -> Outbox | None:
    """Record one notification with a delivery per recipient; None when this (ticket, rule, step,
    due) was queued already.

    What the mail will say is decided here and stored — the template, a JSON snapshot of its
    variables, the Message-ID with its reply token, recipients, subject, reply address — but it is
    rendered into bytes by the sender (render.py), so deciding costs the tick little. Its
    deliveries wait in "rendering", which the sender never claims, until it is rendered."""
    recipients = [r for r in dict.fromkeys(normalise_address(r) for r in recipients) if r]
    if not recipients:
        return None
    # the reply token binds the notification to the ticket and tier; tier 0 = no tier can act on it
    message_id = tokens.new_message_id(secret, ticket.ref if ticket else "-", tier_level or 0,
                                       _domain(ruleset.support_address))
    extra = [["X-Escalate-Ticket", ticket.ref]] if ticket else []
    extra.append(["X-Escalate-Kind", kind])
    headers = {
        # None: the ticket's first message and the notifications before this one (render.py), the
        # same list whenever it is rendered, since outbox rows are only ever added
        "thread": thread,
        "reply_to": (tokens.plus_address(ruleset.support_address, message_id)
                     if ruleset.plus_address_replies else ruleset.support_address),
        "extra": extra,
    }
    mail = batch.mail if batch is not None else None  # a tick's: written with the rest of its batch
    ticket_reason = None
    if ticket is not None and mail is not None:
        ticket_reason = ratelimit.ticket_cap(ticket.id, now, caps, also=mail.per_ticket[ticket.id],
                                             recent=mail.lookups.recent_mail(ticket.id, now, caps))
    elif ticket is not None:
        ticket_reason = ratelimit.ticket_cap(ticket.id, now, caps)
    reasons = {r: _cap_reason(r, kind, ruleset, now, caps, ticket_reason, mail) for r in recipients}
    suppressed = {r: why for r, why in reasons.items() if why}
    # the channels of the tiers, leads and informed lists mailed: deliveries of this same row
    posts = chat.channels_for(ruleset, recipients)
    if posts:
        headers["chat"] = {"to": list(posts), **chat.message(
            kind=kind, subject=subject, context=context, reply_to=headers["reply_to"],
            plus_address_replies=ruleset.plus_address_replies, drill=bool(ticket is not None and ticket.drill))}
        # the ticket's loop cap holds for its posts too, and so does a group's hourly ceiling (the
        # channel gets the group's summary instead); an address's own caps (dead, per address) do not
        for post, beside in posts.items():
            held = [suppressed.get(r) for r in beside if ratelimit.GROUP_CEILING in (suppressed.get(r) or "")]
            reason = ticket_reason or (held[0] if held and len(held) == len(beside) else None)
            if reason:
                suppressed[post] = reason
    values = {
        "ticket": ticket, "escalation": escalation, "kind": kind, "rule": rule, "step": step, "due_at": due_at,
        "tier": tier_level, "message_id": message_id, "mail_from": ruleset.support_address,
        "recipients": recipients, "subject": subject, "raw": b"", "template": template, "context": context,
        "headers": headers, "status": "suppressed" if len(suppressed) == len(recipients) + len(posts) else "queued",
        "last_error": "; ".join(f"{r}: {why}" for r, why in suppressed.items()) or None,
        "next_attempt_at": now, "created_at": now, "attempts": 0,
    }
    if mail is not None:
        # a tick: written with the rest of its batch (DeferredMail.flush); the row has no id yet
        row = rows.unsaved(Outbox, values)
        mail.add(values, recipients, suppressed, row)
        return row
    row_id = rows.insert(Outbox, values, ignore_conflict=True)
    if row_id is None:
        # this (ticket, rule, step, due) was queued already — by an earlier run of the same tick
        return None
    row = Outbox(id=row_id, **values)
    rows.insert_many(Delivery, _deliveries(row_id, values, recipients, suppressed, secret))
    if suppressed:
        _record_suppressed(row, suppressed, batch)
    return row


# -- the tier thread: escalation, reminder, next tier, confirmation, resolution --------------------

def escalation_context(ticket: Ticket, step: MailStep, tier: Tier, previous_tier: Tier | None, next_step: str,
                       ruleset: Ruleset, now: datetime, rule: Rule | None = None) -> dict[str, Any]:
    rules = [_rule_context(ruleset, name) for name in dict.fromkeys((step.rule, *step.reasons))]
    if rule is not None:
        rules[0] = {"name": rule.name, "description": rule.description}
    context = {
        "ticket": ticket_context(ticket, ruleset, now),
        "rule": rules[0],
        "rules": rules,  # every rule that holds, the one whose cadence the ladder follows first
        "tier": {"level": tier.level, "name": tier.name, "group": tier.group, "lead": tier.lead},
        "step": step.step,
        "step_in_tier": step.step,
        "is_repeat": step.kind == REMINDER,
        "is_next_tier": step.kind == NEXT_TIER,
        "previous_tier_name": previous_tier.name if previous_tier else None,
        "needed": "Acknowledge the ticket (reply #ack) and get the customer a response.",
        "next_step": next_step,
        "support_address": ruleset.support_address,
    }
    return _as_of(context, "last_message", "history")


def _rule_context(ruleset: Ruleset, name: str) -> dict[str, str]:
    try:
        rule = ruleset.rule(name)
    except KeyError:  # left rules.yaml since it fired
        return {"name": name, "description": ""}
    return {"name": rule.name, "description": rule.description}


def queue_ladder_mail(*, ticket: Ticket, escalation: Escalation | None, step: MailStep, ruleset: Ruleset,
                      renderer: Renderer, secret: bytes, now: datetime, next_step: str, batch: Batch | None = None,
                      rule: Rule | None = None) -> Outbox | None:
    """The one mail a ladder step sends: the ladder's first mail to its tier, a reminder, the next
    tier up, or the top tier's lead told the ladder went unanswered (rules/ladder.py). `rule`: a
    rule that is not in the ruleset (a drill's)."""
    tier = ruleset.tier(step.tier)
    previous = ruleset.tier(step.previous_tier) if step.previous_tier in {t.level for t in ruleset.tiers} else None
    context = escalation_context(ticket, step, tier, previous, next_step, ruleset, now, rule)
    recipients = [tier.group]
    if step.kind == NEXT_TIER:
        label = f"Escalated to {tier.name}"
    elif step.kind == REMINDER:
        label = f"Reminder {step.step}, {tier.name}"
    elif step.kind == UNANSWERED:
        if not tier.lead:
            return None  # nobody to tell; the audit trail and `tickets show` say the ladder is exhausted
        recipients = [tier.lead]
        label = f"Unanswered by {tier.name}"
    else:
        label = f"Escalation to {tier.name}"
    incident = _incident_label(ticket, ruleset, step.rule)
    if incident and step.kind in (ESCALATION, NEXT_TIER):
        label = f"{incident}, {tier.name}"  # the incident's own alert, not one more ticket's escalation
    try:
        template_of_rule = (rule or ruleset.rule(step.rule)).template
    except KeyError:
        template_of_rule = DEFAULT_TEMPLATE
    template = (step.kind if template_of_rule == DEFAULT_TEMPLATE and step.kind in _template_names(renderer, batch)
                else template_of_rule)
    if step.kind == UNANSWERED:
        template = "unanswered"
    return _queue(batch=batch, ticket=ticket, kind=step.kind, recipients=recipients,
                  subject=f"[{ticket.ref}] {label}: {ticket.subject}",
                  template=template, context=context, ruleset=ruleset, renderer=renderer, secret=secret, now=now,
                  tier_level=tier.level, escalation=escalation, rule=step.rule, step=step.step, due_at=step.due_at)


def _incident_label(ticket: Ticket, ruleset: Ruleset, rule_name: str) -> str | None:
    """"Incident: 3 customers affected" when `rule_name` acts for the ticket's incident."""
    try:
        incident_wide = ruleset.rule(rule_name).incident_wide
    except KeyError:
        return None
    if not incident_wide or ticket.incident_id is None:
        return None
    customers = Incident.select(Incident.customers).where(Incident.id == ticket.incident_id).scalar()
    return f"Incident: {customers} customers affected"


def escalated_tiers(ticket: Ticket, ruleset: Ruleset) -> list[Tier]:
    """The tiers whose groups were mailed about the ticket, lowest first."""
    levels = {row.tier for row in Outbox.select(Outbox.tier)
              .where((Outbox.ticket == ticket) & Outbox.kind.in_(ESCALATION_KINDS) & Outbox.tier.is_null(False))}
    return [tier for tier in ruleset.tiers if tier.level in levels]


def queue_confirmation(*, ticket: Ticket, tier: Tier | None, actor: str, action_text: str, note: str,
                       ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
                       batch: Batch | None = None) -> Outbox | None:
    """Tell the tier thread that a command took effect, so whoever was told of the ticket sees who has
    it: every tier group that was mailed about it, and the tier of the mail answered."""
    tiers = {t.level: t for t in escalated_tiers(ticket, ruleset)}
    if tier is not None:
        tiers.setdefault(tier.level, tier)
    if not tiers:
        return None
    context = {"ticket": ticket_context(ticket, ruleset, now), "actor": actor, "action_text": action_text,
               "note": note, "support_address": ruleset.support_address}
    subject = f"[{ticket.ref}] {action_text.capitalize()} by {actor}: {ticket.subject}"
    return _queue(batch=batch, ticket=ticket, kind="confirmation",
                  recipients=[t.group for _, t in sorted(tiers.items())],
                  subject=subject, template="confirmation", context=context, ruleset=ruleset, renderer=renderer,
                  secret=secret, now=now, tier_level=(tier or max(tiers.values(), key=lambda t: t.level)).level)


def queue_resolution_notice(*, ticket: Ticket, actor: str, note: str, ruleset: Ruleset, renderer: Renderer,
                            secret: bytes, now: datetime, batch: Batch | None = None) -> Outbox | None:
    """Tell every tier group that was escalated to on this ticket that it is resolved: stop work."""
    tiers = escalated_tiers(ticket, ruleset)
    if not tiers:
        return None
    context = {"ticket": ticket_context(ticket, ruleset, now), "actor": actor, "note": note,
               "tiers": [{"level": t.level, "name": t.name} for t in tiers],
               "support_address": ruleset.support_address}
    _as_of(context, "history")
    return _queue(batch=batch, ticket=ticket, kind="resolution", recipients=[t.group for t in tiers],
                  subject=f"[{ticket.ref}] Resolved by {actor}: {ticket.subject}", template="resolution",
                  context=context, ruleset=ruleset, renderer=renderer, secret=secret, now=now,
                  tier_level=tiers[-1].level, rule="resolution", step=0, due_at=ticket.resolved_at or now)


# -- the accountable, the consulted, the informed ------------------------------------------------

def queue_breach_alert(*, ticket: Ticket, rule: Rule, tier: Tier, breached: str, due_at: datetime,
                       ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime, batch: Batch | None = None,
                       step: int = 0) -> Outbox | None:
    """Tell the tier's lead that `tier` did not respond in time (`breached` says what was missed).
    None when the tier has no lead or this breach was reported already."""
    if not tier.lead:
        return None
    context = {"ticket": ticket_context(ticket, ruleset, now), "rule": {"name": rule.name, "description": rule.description},
               "tier": {"level": tier.level, "name": tier.name, "group": tier.group, "lead": tier.lead},
               "breached": breached, "due_at": _when(due_at), "overdue": format_duration(max(now - due_at, timedelta(0))),
               "support_address": ruleset.support_address}
    _as_of(context, "last_message", "history")
    return _queue(batch=batch, ticket=ticket, kind="breach", recipients=[tier.lead],
                  subject=f"[{ticket.ref}] Breach, {tier.name}: {ticket.subject}", template="breach",
                  context=context, ruleset=ruleset, renderer=renderer, secret=secret, now=now,
                  tier_level=tier.level, rule=f"{rule.name}#breach", step=step, due_at=due_at)


def queue_input_request(*, ticket: Ticket, department: str, address: str, question: str, requested_by: str,
                        ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
                        batch: Batch | None = None) -> Outbox | None:
    """Ask a consulted department for input on a ticket (an external escalation)."""
    context = {"ticket": ticket_context(ticket, ruleset, now), "department": department, "question": question,
               "requested_by": requested_by, "support_address": ruleset.support_address}
    _as_of(context, "last_message")
    return _queue(batch=batch, ticket=ticket, kind="input-request", recipients=[address],
                  subject=f"[{ticket.ref}] Input needed from {department}: {ticket.subject}",
                  template="input-request", context=context, ruleset=ruleset, renderer=renderer, secret=secret,
                  now=now, rule=f"input-request:{normalise_address(address)}", step=0, due_at=now)


GROUP_SUMMARY_EVERY = timedelta(minutes=15)  # a held ladder mail reaches its group this late at most
SUMMARY_LINES = 200  # held mails a summary lists one by one; beyond, how many more


def held_by_ceiling(tier: Tier, since: datetime, kinds: tuple[str, ...] = ESCALATION_KINDS):
    """The mails of `kinds` to `tier`'s group (or, for "unanswered", its lead) held back by the
    hourly ceiling since `since`."""
    return (Outbox.select().where((Outbox.status == "suppressed") & Outbox.kind.in_(kinds)
                                  & (Outbox.tier == tier.level) & (Outbox.created_at > since)
                                  & Outbox.last_error.contains(ratelimit.GROUP_CEILING))
            .order_by(Outbox.created_at, Outbox.id))


def queue_group_summaries(*, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime) -> int:
    """One mail per tier group (and lead) listing the ladder mails its hourly ceiling held back
    since its last summary, at most every GROUP_SUMMARY_EVERY: a flood reaches them as one list they
    can work through, not as hundreds of mails, and nothing is dropped without a word."""
    # usually nothing is held: one read of the day's suppressed mail, through the status index
    pending = set(Outbox.select(Outbox.tier, Outbox.kind)
                  .where((Outbox.status == "suppressed") & (Outbox.created_at > now - timedelta(hours=24))
                         & Outbox.last_error.contains(ratelimit.GROUP_CEILING)).distinct().tuples())
    queued = 0
    for tier in ruleset.tiers:
        audiences = [(tier.group, ESCALATION_KINDS, False)] + ([(tier.lead, ("unanswered",), True)] if tier.lead else [])
        for address, kinds, lead in audiences:
            if any((tier.level, kind) in pending for kind in kinds):
                queued += _queue_summary(tier, normalise_address(address), kinds, lead, ruleset, renderer, secret, now)
    return queued


def _queue_summary(tier: Tier, address: str, kinds: tuple[str, ...], lead: bool, ruleset: Ruleset,
                   renderer: Renderer, secret: bytes, now: datetime) -> int:
    last = (Delivery.select(Delivery.created_at).join(Outbox)
            .where((Delivery.recipient == address) & (Outbox.kind == "group-summary"))
            .order_by(Delivery.created_at.desc()).first())
    if last is not None and now - last.created_at < GROUP_SUMMARY_EVERY:
        return 0
    since = last.created_at if last is not None else now - timedelta(hours=24)
    held = list(held_by_ceiling(tier, since, kinds).limit(SUMMARY_LINES + 1))
    if not held:
        return 0
    more = held_by_ceiling(tier, since, kinds).count() - SUMMARY_LINES if len(held) > SUMMARY_LINES else 0
    held = held[:SUMMARY_LINES]
    what = "tickets nobody acknowledged to the end of their ladder" if lead else "escalations"
    context = {"tier": {"level": tier.level, "name": tier.name, "group": tier.group}, "lead": lead, "what": what,
               "held": [{"subject": row.subject, "kind": row.kind, "at": _when(row.created_at)} for row in held],
               "more": more, "support_address": ruleset.support_address}
    row = _queue(ticket=None, kind="group-summary", recipients=[address],
                 subject=f"{len(held) + more} {what} ({tier.name}) held back by the hourly limit",
                 template="group-summary", context=context, ruleset=ruleset, renderer=renderer, secret=secret,
                 now=now, tier_level=tier.level, rule=f"group-summary:{address}", step=0, due_at=now)
    return int(row is not None)


def queue_digest(*, recipients: list[str], period_start: datetime, period_end: datetime, ruleset: Ruleset,
                 renderer: Renderer, secret: bytes, now: datetime, ticket_ids: list[int] | None = None) -> Outbox | None:
    """The daily digest for the informed list: what escalated (the tickets rules added to this
    list's digest, `ticket_ids`; without them every ticket that escalated in the period), what was
    resolved, what is still open. Once per period and recipient list (a second call for the same
    period returns None; digest.py adds a unique key for instances racing each other)."""
    key = "digest:" + ",".join(sorted(normalise_address(r) for r in recipients))
    if Outbox.select().where((Outbox.kind == "digest") & (Outbox.rule == key) & (Outbox.due_at == period_end)).exists():
        return None
    if ticket_ids is not None:
        escalated = Ticket.select().where(Ticket.id.in_(ticket_ids))
    else:
        escalated = (Ticket.select().join(Escalation).where((Escalation.started_at >= period_start)
                                                            & (Escalation.started_at < period_end)).distinct())
    still_open = Ticket.select().where(Ticket.status.in_(("new", "open", "waiting")) & Ticket.tier.is_null(False))
    resolved = Ticket.select().where((Ticket.resolved_at >= period_start) & (Ticket.resolved_at < period_end))
    context = {
        "period_start": _when(period_start), "period_end": _when(period_end),
        "escalated": [ticket_context(t, ruleset, now) for t in escalated.order_by(Ticket.id)],
        "still_open": [ticket_context(t, ruleset, now) for t in still_open.order_by(Ticket.id).limit(200)],
        "resolved": [ticket_context(t, ruleset, now) for t in resolved.order_by(Ticket.id)],
        "support_address": ruleset.support_address,
    }
    return _queue(ticket=None, kind="digest", recipients=recipients,
                  subject=f"Escalation digest {period_start:%Y-%m-%d}: {len(context['escalated'])} escalated, "
                          f"{len(context['still_open'])} open",
                  template="digest", context=context, ruleset=ruleset, renderer=renderer, secret=secret, now=now,
                  rule=key, step=0, due_at=period_end)


# -- the customer ----------------------------------------------------------------------------------

_MACHINE_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_MACHINE_LOCALPARTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply", "donotreply")


def is_machine_mail(raw: bytes) -> str | None:
    """Why a mail was written by a machine (RFC 3834 and the usual signs), or None for a person.

    Never answer machine mail: an autoresponder answering us is how mail loops start."""
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    try:
        headers = email.message_from_bytes(head + b"\n\n", policy=email.policy.compat32)
    except Exception:  # a header block we cannot read is not a person we should answer
        return "unreadable headers"

    def get(name: str) -> str:
        try:
            return str(headers.get(name, "") or "").strip().lower()
        except Exception:
            return ""
    if get("auto-submitted") not in ("", "no"):
        return f"Auto-Submitted: {get('auto-submitted')}"
    if get("precedence") in _MACHINE_PRECEDENCE:
        return f"Precedence: {get('precedence')}"
    for name in ("x-autoreply", "x-autorespond", "list-id", "list-unsubscribe", "x-failed-recipients"):
        if get(name):
            return f"{name} present"
    if "report-type=delivery-status" in get("content-type").replace(" ", ""):
        return "delivery status notification"
    sender = normalise_address(get("from") or get("return-path"))
    if not sender or sender.split("@")[0] in _MACHINE_LOCALPARTS:
        return f"machine sender {sender or '(none)'}"
    return None


def queue_acknowledgement(*, ticket: Ticket, message: Message, ruleset: Ruleset, renderer: Renderer,
                          secret: bytes, now: datetime, batch: Batch | None = None) -> Outbox | None:
    """Tell a customer their mail became ticket `ticket.ref` (optional per the rules). At most one
    per sender per ticket (a unique key), never to machine mail, capped per address.
    Returns None when nothing was queued or recorded."""
    sender = normalise_address(message.from_addr or "")
    if not sender or sender == ruleset.support_address or sender in ruleset.team_addresses:
        return None
    machine = is_machine_mail(bytes(message.raw)) if message.raw else None
    if machine:
        audit.record(ticket, now, "escalate", "acknowledgement-skipped", sender=sender,
                     reason=f"machine mail: {machine}", batch=batch)
        return None
    context = {"ticket": ticket_context(ticket, ruleset, now), "sender": sender,
               "support_address": ruleset.support_address}
    return _queue(batch=batch, ticket=ticket, kind="acknowledgement", recipients=[sender],
                  subject=f"[{ticket.ref}] We received your message: {ticket.subject}",
                  template="acknowledgement", context=context, ruleset=ruleset, renderer=renderer, secret=secret,
                  now=now, rule=f"acknowledgement:{sender}", step=0, due_at=ticket.created_at)


# -- delivery trouble ------------------------------------------------------------------------------

def queue_delivery_failure(*, failed: Outbox, ruleset: Ruleset, renderer: Renderer, secret: bytes,
                           now: datetime) -> Outbox | None:
    """Tell the lead once that a notification could not be delivered (code and text per recipient).
    Never for a failure notice itself: a dead lead address must not start a storm."""
    if failed.kind == "delivery-failure":
        return None
    tier = None
    if failed.tier is not None and failed.tier in {t.level for t in ruleset.tiers}:
        tier = ruleset.tier(failed.tier)
    leads = [tier.lead] if tier and tier.lead else [t.lead for t in ruleset.tiers if t.lead][:1]
    if not leads:
        return None
    deliveries = [{"recipient": d.recipient, "status": d.status, "code": d.code, "error": d.last_error}
                  for d in Delivery.select().where(Delivery.outbox == failed).order_by(Delivery.id)]
    ticket = failed.ticket if failed.ticket_id else None
    context = {"ticket": ticket_context(ticket, ruleset, now) if ticket else None,
               "failed": {"id": failed.id, "kind": failed.kind, "subject": failed.subject,
                          "message_id": failed.message_id, "created_at": _when(failed.created_at)},
               "deliveries": deliveries, "support_address": ruleset.support_address}
    prefix = f"[{ticket.ref}] " if ticket else ""
    return _queue(ticket=ticket, kind="delivery-failure", recipients=leads,
                  subject=f"{prefix}Undeliverable {failed.kind} notification #{failed.id}",
                  template="delivery-failure", context=context, ruleset=ruleset, renderer=renderer, secret=secret,
                  now=now, rule=f"delivery-failure#{failed.id}", step=0, due_at=failed.created_at)


def lead_notifier(ruleset: Ruleset, renderer: Renderer, secret: bytes) -> Callable[[Outbox, datetime], None]:
    """The `on_failed` callback for outbox.send_due: queue the lead's failure notice."""
    def tell_lead(failed: Outbox, now: datetime) -> None:
        queue_delivery_failure(failed=failed, ruleset=ruleset, renderer=renderer, secret=secret, now=now)
    return tell_lead


# -- replies: the customer thread (#reply), refusal notices, command help ---------------------------

def queue_customer_reply(*, ticket: Ticket, actor: str, text: str, ruleset: Ruleset, renderer: Renderer,
                         secret: bytes, now: datetime, batch: Batch | None = None) -> Outbox | None:
    """An agent's `#reply`: to the customer, from the support address, threaded into the
    customer's conversation (their messages only — never our internal tier thread)."""
    customer_ids = [m.message_id for m in Message.select(Message.message_id)
                    .where((Message.ticket == ticket) & (Message.kind == "customer") & Message.message_id.is_null(False))
                    .order_by(Message.id)]
    subject = ticket.subject if ticket.subject.lower().startswith("re:") else f"Re: {ticket.subject}"
    context = {"ticket": ticket_context(ticket, ruleset, now), "text": text, "actor": actor,
               "support_address": ruleset.support_address}
    return _queue(batch=batch, ticket=ticket, kind="customer-reply", recipients=[ticket.requester],
                  subject=f"[{ticket.ref}] {subject}", template="customer_reply", context=context, ruleset=ruleset,
                  renderer=renderer, secret=secret, now=now, thread=customer_ids[-10:])


def queue_refusal(*, recipient: str, commands: list[str], reason: str, ruleset: Ruleset,
                  renderer: Renderer, secret: bytes, now: datetime, ref: str | None = None,
                  batch: Batch | None = None) -> Outbox | None:
    """Tell a team member their commands were not acted on — at most once an hour per address.
    It names the ticket by its reference (refusals go only to roster members, replies.py), so they
    know which reply it was; nothing else of the ticket."""
    if ratelimit.address_cap(recipient, now, REFUSALS_PER_ADDRESS, kinds=("refusal",)):
        return None
    context = {"commands": commands, "reason": reason, "support_address": ruleset.support_address, "ref": ref}
    subject = f"[{ref}] Your reply was not acted on" if ref else "Your reply was not acted on"
    return _queue(batch=batch, ticket=None, kind="refusal", recipients=[recipient], subject=subject,
                  template="refusal", context=context, ruleset=ruleset, renderer=renderer, secret=secret, now=now)


def queue_command_help(*, ticket: Ticket, recipient: str, unknown: list[str], commands: list[dict[str, str]],
                       ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
                       batch: Batch | None = None) -> Outbox | None:
    """A roster member wrote a command we do not know: a short help, at most once an hour each."""
    if ratelimit.address_cap(recipient, now, REFUSALS_PER_ADDRESS, kinds=("command-help",)):
        return None
    context = {"ticket": ticket_context(ticket, ruleset, now), "unknown": unknown, "commands": commands,
               "support_address": ruleset.support_address}
    return _queue(batch=batch, ticket=ticket, kind="command-help", recipients=[recipient],
                  subject=f"[{ticket.ref}] Commands escalate understands", template="command_help",
                  context=context, ruleset=ruleset, renderer=renderer, secret=secret, now=now)


REFUSALS_PER_ADDRESS = ((timedelta(hours=1), 1),)
