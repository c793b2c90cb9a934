"""Which ticket a message belongs to.

In this order: the ticket reference in the subject (`[T-1042]` anywhere,
behind any `Re:`/`AW:`/`Fwd:`/`[EXT]`), then In-Reply-To/References against every Message-ID we
have stored or sent, then a fallback (same sender, same normalised subject, recently active).
Otherwise the message starts a new conversation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from escalate.mail import tokens
from escalate.mail.parse import ParsedMail
from escalate.store import messages as store_messages
from escalate.store import outbox as store_outbox
from escalate.store import rows
from escalate.store import tickets as store_tickets
from escalate.store.models import Outbox, Ticket

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
    how: str  # "subject-reference", "in-reply-to", "references", "notification", "fallback", "sender-limit"
    notification: Outbox | None = None


def find_ticket(parsed: ParsedMail, prefix: str, now: datetime) -> Match | None:
    for ref in subject_refs(parsed.subject, prefix):
        ticket_id = store_tickets.id_by_ref(ref)
        if ticket_id is not None:
            return Match(rows.get_by_id(Ticket, ticket_id), "subject-reference", _notification_answered(parsed))
    by_header = _by_message_ids(parsed)
    if by_header is not None:
        return by_header
    if parsed.from_addr:
        normalised = normalise_subject(parsed.subject, prefix)
        if normalised:
            ticket_id = store_tickets.latest_by_subject(parsed.from_addr, normalised, now - FALLBACK_WINDOW)
            if ticket_id is not None:
                return Match(rows.get_by_id(Ticket, ticket_id), "fallback")
    return None


def _plus_address_ids(parsed: ParsedMail) -> list[str]:
    """Notification Message-IDs named by plus-addresses the reply was sent to (support+esc.…@):
    the proof for clients that drop In-Reply-To (Outlook keeps only Thread-Index)."""
    found = (tokens.message_id_from_plus_address(a) for a in (*parsed.to_addrs, *parsed.cc_addrs))
    return [mid for mid in found if mid]


def _notification_answered(parsed: ParsedMail) -> Outbox | None:
    ids = list(dict.fromkeys(_plus_address_ids(parsed) + list(parsed.in_reply_to) + list(reversed(parsed.references))))
    if not ids:
        return None
    found = store_outbox.ids_by_message_id(ids)
    for message_id in ids:
        if message_id in found:
            return rows.get_by_id(Outbox, found[message_id])
    return None


def _by_message_ids(parsed: ParsedMail) -> Match | None:
    # In-Reply-To first (the message answered), then References from the newest end
    candidates = [("plus-address", mid) for mid in _plus_address_ids(parsed)]
    candidates += [("in-reply-to", mid) for mid in parsed.in_reply_to]
    candidates += [("references", mid) for mid in reversed(parsed.references)]
    if not candidates:
        return None
    ids = list(dict.fromkeys(mid for _, mid in candidates))
    stored = store_messages.tickets_by_message_id(ids)
    sent = store_outbox.ticketed_ids_by_message_id(ids)
    for how, mid in candidates:
        if mid in sent:
            notification = rows.get_by_id(Outbox, sent[mid])
            return Match(rows.get_by_id(Ticket, notification.ticket_id), "notification", notification)
        if mid in stored:
            return Match(rows.get_by_id(Ticket, stored[mid]), how, _notification_answered(parsed))
    return None
