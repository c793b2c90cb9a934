"""Ingest: mailbox → parse → thread → ticket, one transaction per message.

The folder's UID checkpoint advances in the same transaction that stores the message, so a crash
at any point re-fetches at most the message in flight, and the unique `dedupe_key` turns the
re-fetch into a no-op (RELIABILITY.md §0.1–0.2).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from . import audit, crashpoints, tickets
from .conversations import find_ticket, normalise_subject
from .db import write_transaction
from .mailbox import Mailbox
from .models import FolderState, Message, Outbox, Quarantine
from .parse import ParsedMail, UnparseableMail, parse_message
from .replies import handle_commands
from .rules.model import Ruleset
from .templates import Renderer

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    outcomes: Counter = field(default_factory=Counter)
    tickets_created: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    folder: str | None
    uidvalidity: int | None
    uid: int | None


def ingest_folder(mailbox: Mailbox, folder: str, ruleset: Ruleset, renderer: Renderer, secret: bytes,
                  now: datetime, result: IngestResult) -> None:
    uidvalidity = mailbox.select(folder)
    state = FolderState.get_or_none(FolderState.folder == folder)
    if state is None:
        state = FolderState.create(folder=folder, uidvalidity=uidvalidity, last_uid=0, updated_at=now)
    elif state.uidvalidity != uidvalidity:
        # the server renumbered the folder: rescan it all; Message-ID dedupe keeps it idempotent
        with write_transaction():
            audit.record(None, now, "escalate", "uidvalidity-changed", folder=folder,
                         old=state.uidvalidity, new=uidvalidity)
            state.uidvalidity, state.last_uid, state.updated_at = uidvalidity, 0, now
            state.save()
    uids = mailbox.uids_after(state.last_uid)
    for uid, raw in mailbox.fetch(uids):
        crashpoints.hit("after-fetch")
        with write_transaction():
            outcome = store_mail(raw, Source(folder, uidvalidity, uid), ruleset, renderer, secret, now, result)
            FolderState.update(last_uid=uid, updated_at=now).where(FolderState.folder == folder).execute()
            crashpoints.hit("in-txn-before-commit")
        crashpoints.hit("after-commit")
        result.outcomes[outcome] += 1


def classify_sender(parsed: ParsedMail, requester: str | None, ruleset: Ruleset) -> str:
    sender = parsed.from_addr
    if sender and requester and sender == requester:
        return "customer"
    if sender and ruleset.is_roster_member(sender):
        return "agent"
    return "other"


def store_mail(raw: bytes, source: Source, ruleset: Ruleset, renderer: Renderer, secret: bytes,
               now: datetime, result: IngestResult) -> str:
    """Store one raw message and act on it; returns the outcome ("ticket", "reply", "duplicate", …)."""
    try:
        parsed = parse_message(raw)
    except UnparseableMail as error:
        return _quarantine(raw, source, error.reason, now)
    crashpoints.hit("after-parse")
    dedupe_key = parsed.message_id or f"sha256:{parsed.sha256}"
    if Message.select().where(Message.dedupe_key == dedupe_key).exists():
        return "duplicate"
    if parsed.message_id and Outbox.select().where(Outbox.message_id == parsed.message_id).exists():
        _store(parsed, raw, source, dedupe_key, "own", now)  # our own notification came back (C5)
        return "own"

    match = find_ticket(parsed, ruleset.reference_prefix, now)
    if match is None:
        message = _store(parsed, raw, source, dedupe_key, "customer", now)
        requester = parsed.from_addr or "unknown"
        ticket = tickets.open_ticket(
            subject=parsed.subject, normalised_subject=normalise_subject(parsed.subject, ruleset.reference_prefix),
            requester=requester, requester_name=parsed.from_name, now=now,
            severity=ruleset.severity_for(parsed.subject, parsed.text), reference_prefix=ruleset.reference_prefix,
            reason="new conversation")
        tickets.add_message(ticket, message, now)
        result.tickets_created.append(ticket.ref)
        return "ticket"

    ticket = match.ticket
    kind = classify_sender(parsed, ticket.requester, ruleset)
    message = _store(parsed, raw, source, dedupe_key, kind, now)
    tickets.add_message(ticket, message, now)
    handle_commands(parsed, ticket, match.notification, ruleset, renderer, secret, now)
    return "reply"


def _store(parsed: ParsedMail, raw: bytes, source: Source, dedupe_key: str, kind: str, now: datetime) -> Message:
    return Message.create(
        dedupe_key=dedupe_key, message_id=parsed.message_id, sha256=parsed.sha256, kind=kind,
        folder=source.folder, uidvalidity=source.uidvalidity, uid=source.uid,
        from_addr=parsed.from_addr, from_name=parsed.from_name, subject=parsed.subject,
        sent_at=parsed.date, received_at=now, in_reply_to=list(parsed.in_reply_to),
        references=list(parsed.references), body_text=parsed.text, new_text=parsed.new_text,
        defects=list(parsed.defects), raw=raw,
    )


def _quarantine(raw: bytes, source: Source, reason: str, now: datetime) -> str:
    Quarantine.create(reason=reason, received_at=now, folder=source.folder, uidvalidity=source.uidvalidity,
                      uid=source.uid, sha256=hashlib.sha256(raw).hexdigest(), raw=raw)
    log.warning("quarantined %s uid %s: %s", source.folder, source.uid, reason)
    return "quarantined"
