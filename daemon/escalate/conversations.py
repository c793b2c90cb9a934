"""Which ticket a message belongs to.

In this order (DESIGN.md "Thread"): the ticket reference in the subject (`[T-1042]` anywhere,
behind any `Re:`/`AW:`/`Fwd:`/`[EXT]`), then In-Reply-To/References against every Message-ID we
have stored or sent, then a fallback (same sender, same normalised subject, recently active).
Otherwise the message starts a new conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from .models import Message, Outbox, Ticket
from .parse import ParsedMail

FALLBACK_WINDOW = timedelta(days=7)

# reply/forward prefixes in the languages mail clients write them, with optional counters: "Re[2]:"
_PREFIX = re.compile(r"^\s*(?:(?:re|aw|sv|vs|antw|wg|fw|fwd|tr|rif|odp|r)\s*(?:\[\d+\]|\(\d+\))?\s*[:：]|\[ext(?:ernal)?\]|\*?ext\*?:)\s*",
                     re.IGNORECASE)


def reference_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"\[\s*{re.escape(prefix)}-(\d+)\s*\]", re.IGNORECASE)


def subject_refs(subject: str, prefix: str) -> list[str]:
    """Ticket references in a subject, in order of appearance, e.g. ["T-1042"]."""
    return [f"{prefix}-{number}" for number in reference_pattern(prefix).findall(subject)]


def normalise_subject(subject: str, prefix: str = "T") -> str:
    """The subject without reply/forward prefixes, ticket tags and case: what a conversation keeps."""
    text = reference_pattern(prefix).sub(" ", subject)
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return " ".join(text.split()).lower()


@dataclass(frozen=True)
class Match:
    ticket: Ticket
    how: str  # "subject-reference", "in-reply-to", "references", "notification", "fallback"
    notification: Outbox | None = None


def find_ticket(parsed: ParsedMail, prefix: str, now: datetime) -> Match | None:
    for ref in subject_refs(parsed.subject, prefix):
        ticket = Ticket.get_or_none(Ticket.ref == ref)
        if ticket is not None:
            return Match(ticket, "subject-reference", _notification_answered(parsed))
    by_header = _by_message_ids(parsed)
    if by_header is not None:
        return by_header
    if parsed.from_addr:
        normalised = normalise_subject(parsed.subject, prefix)
        if normalised:
            ticket = (Ticket.select()
                      .where((Ticket.requester == parsed.from_addr) & (Ticket.normalised_subject == normalised)
                             & (Ticket.updated_at >= now - FALLBACK_WINDOW) & (Ticket.status != "closed"))
                      .order_by(Ticket.updated_at.desc()).first())
            if ticket is not None:
                return Match(ticket, "fallback")
    return None


def _notification_answered(parsed: ParsedMail) -> Outbox | None:
    ids = list(parsed.in_reply_to) + list(reversed(parsed.references))
    if not ids:
        return None
    rows = {row.message_id: row for row in Outbox.select().where(Outbox.message_id.in_(ids))}
    for message_id in ids:
        if message_id in rows:
            return rows[message_id]
    return None


def _by_message_ids(parsed: ParsedMail) -> Match | None:
    # In-Reply-To first (the message answered), then References from the newest end
    candidates = [("in-reply-to", mid) for mid in parsed.in_reply_to]
    candidates += [("references", mid) for mid in reversed(parsed.references)]
    if not candidates:
        return None
    ids = [mid for _, mid in candidates]
    stored = {m.message_id: m.ticket_id for m in
              Message.select(Message.message_id, Message.ticket).where(Message.message_id.in_(ids) & Message.ticket.is_null(False))}
    sent = {o.message_id: o for o in Outbox.select().where(Outbox.message_id.in_(ids) & Outbox.ticket.is_null(False))}
    for how, mid in candidates:
        if mid in sent:
            return Match(Ticket.get_by_id(sent[mid].ticket_id), "notification", sent[mid])
        if mid in stored:
            return Match(Ticket.get_by_id(stored[mid]), how, _notification_answered(parsed))
    return None
