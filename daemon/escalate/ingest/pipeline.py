"""Ingest: mailbox → parse → classify → thread → ticket, a transaction per fetched batch.

Each FETCH batch (≤ 100 messages) is stored in one transaction with a savepoint per message, and
the folder's UID checkpoint advances in that same transaction: a crash re-fetches at most the
batch in flight, and the unique `dedupe_key` turns the re-fetch into a no-op. One fsync per batch
instead of one per message (and one for the batch's attachment pack). A message that makes its own
savepoint fail is quarantined with the reason, and the batch goes on.

Only after the commit is the mail flagged or moved on the server (ESCALATE_PROCESSED); the
folder remembers the last UID so marked (`flagged_uid`), and a crash between commit and marking
is repaired on the next run by marking (flagged_uid, last_uid] again — harmless when repeated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

import peewee

from escalate.ingest import dedupe
from escalate.ingest.attachments import AttachmentStore, AttachmentWriteError
from escalate.ingest.conversations import Match, find_ticket, normalise_subject, subject_refs
from escalate.ingest.mailbox import Fetched, Mailbox
from escalate.mail.classify import Verdict, classify, own_address
from escalate.mail.parse import ParsedMail, UnparseableMail, parse_message
from escalate.mail.quoted import reply_text
from escalate.ops import crashpoints, logs
from escalate.outbound import outbox, ratelimit
from escalate.outbound.templates import Renderer
from escalate.rules.model import Ruleset
from escalate.store import outbox as store_outbox
from escalate.store import rows
from escalate.store.batch import Batch, held_lines
from escalate.store.db import write_transaction
from escalate.store.models import Delivery, FolderState, Message, Outbox, Quarantine, Ticket
from escalate.tickets import audit, incidents
from escalate.tickets import lifecycle as tickets
from escalate.tickets.replies import handle_commands

log = logging.getLogger(__name__)

# errors that mean "the database cannot take writes now" (disk full, locked, gone): the batch
# must fail and be retried, never turn into a quarantine record (a full disk pauses ingest)
_DATABASE_DOWN = (peewee.OperationalError, peewee.InterfaceError)
# likewise attachment contents that cannot be written (disk full): not the mail's fault
_STORAGE_DOWN = (*_DATABASE_DOWN, AttachmentWriteError)


@dataclass
class IngestResult:
    outcomes: Counter = field(default_factory=Counter)
    tickets_created: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Source:
    folder: str | None
    uidvalidity: int | None
    uid: int | None
    account: str = ""  # the IMAP account's "user@host:port" (FolderState.account)


@dataclass(frozen=True)
class IngestOptions:
    """What store_mail needs beyond the rules: the admin's choices and where attachments go."""

    processed_action: str = "leave"
    max_message_bytes: int = 25 * 1024 * 1024
    attachments: AttachmentStore | None = None
    previous_secret: bytes | None = None  # reply tokens minted before a secret rotation still verify
    token_ttl: timedelta = timedelta(days=7)  # replies to older notifications cannot act
    # imported history (history.py): what happened then is recorded, nothing is done about it now —
    # no acknowledgement to the customer, no commands acted on, weeks after the fact
    history: bool = False


DEFAULT_OPTIONS = IngestOptions()


# ------------------------------------------------------------------------------------------------
# a folder


def ingest_folder(mailbox: Mailbox, folder: str, ruleset: Ruleset, renderer: Renderer, secret: bytes,
                  now: datetime, result: IngestResult, options: IngestOptions = DEFAULT_OPTIONS,
                  account: str = "") -> None:
    """Fetch and store everything new in `folder` of `account`, then flag/move it as the admin chose."""
    uidvalidity = mailbox.select(folder, writable=options.processed_action != "leave")
    state = _folder_state(account, folder, uidvalidity, now)
    _repair_marks(mailbox, state, options)
    uids = mailbox.uids_after(state.last_uid)
    FolderState.update(polled_at=now).where(FolderState.id == state.id).execute()  # for `status`
    if not uids:
        return
    # the next batch is fetched while this one is stored; marking still follows this one's commit
    with mailbox.fetch_ahead(uids, max_bytes=options.max_message_bytes) as batches:
        for batch in batches:
            if not batch:
                continue
            store_batch(batch, Source(folder, uidvalidity, None, account), ruleset, renderer, secret, now, result,
                        options)
            for _ in batch:
                crashpoints.hit("after-commit")  # the n-th message is committed, not yet marked
            if options.processed_action != "leave":
                uids_done = [fetched.uid for fetched in batch]
                mailbox.mark_processed(uids_done, options.processed_action)
                crashpoints.hit("after-flag-before-checkpoint")
                FolderState.update(flagged_uid=uids_done[-1]).where(FolderState.id == state.id).execute()


def _folder_state(account: str, folder: str, uidvalidity: int, now: datetime) -> FolderState:
    which = (FolderState.account == account) & (FolderState.folder == folder)
    state = FolderState.get_or_none(which)
    if state is None:
        # two instances' first polls of a folder may both get here (before folder locks, or on
        # SQLite with a CLI run beside the daemon): the unique key keeps one row, both use it
        with write_transaction():
            (FolderState.insert(account=account, folder=folder, uidvalidity=uidvalidity, last_uid=0, flagged_uid=0,
                                updated_at=now).on_conflict_ignore().execute())
        state = FolderState.get(which)
    if state.uidvalidity != uidvalidity:
        # the server renumbered the folder: rescan it all; dedupe makes the rescan store nothing twice
        with write_transaction():
            audit.record(None, now, "escalate", "uidvalidity-changed", folder=folder,
                         old=state.uidvalidity, new=uidvalidity, last_uid=state.last_uid)
            state.uidvalidity, state.last_uid, state.flagged_uid, state.updated_at = uidvalidity, 0, 0, now
            state.save()
        log.warning("UIDVALIDITY of %s changed from %s to %s: rescanning the folder", folder,
                    state.uidvalidity, uidvalidity)
    return state


def _repair_marks(mailbox: Mailbox, state: FolderState, options: IngestOptions) -> None:
    """Mark what was committed but not yet marked when the process died."""
    flagged = state.flagged_uid or 0
    if options.processed_action == "leave" or flagged >= state.last_uid:
        return
    pending = [uid for uid in mailbox.uids_after(flagged) if uid <= state.last_uid]
    mailbox.mark_processed(pending, options.processed_action)
    FolderState.update(flagged_uid=state.last_uid).where(FolderState.id == state.id).execute()


def store_batch(batch: list[Fetched], source: Source, ruleset: Ruleset, renderer: Renderer, secret: bytes,
                now: datetime, result: IngestResult, options: IngestOptions = DEFAULT_OPTIONS) -> None:
    """Store a fetched batch in one transaction, a savepoint per message; advance the checkpoint."""
    outcomes = []
    created: list[str] = []
    # the batch's attachment contents share one pack file, sealed (fsynced) before the commit, and
    # its audit events are written in one executemany before it too (Batch.flush; a mail undone by
    # its savepoint drops its own, see _store_guarded)
    attachments = options.attachments.batch() if options.attachments is not None else nullcontext()
    # its log lines once it committed (logs.held)
    with logs.held() as held, write_transaction(), attachments:
        work = Batch(log=held)
        for fetched in batch:
            crashpoints.hit("after-fetch")
            one = Source(source.folder, source.uidvalidity, fetched.uid or None, source.account)
            if fetched.headers_only:
                outcome = _quarantine(fetched.raw, one, f"too large: {fetched.size} bytes (limit "
                                      f"{options.max_message_bytes}); only the headers were fetched", now)
            else:
                outcome = _store_guarded(fetched.raw, one, ruleset, renderer, secret, message_time(fetched, now),
                                         created, options, work)
            outcomes.append(outcome)
            crashpoints.hit("in-txn-before-commit")
        work.flush()
        if source.uidvalidity is not None:  # mail from a folder (not an import): move its checkpoint
            FolderState.update(last_uid=batch[-1].uid, updated_at=now, mail_at=now).where(
                (FolderState.account == source.account) & (FolderState.folder == source.folder)).execute()
    result.outcomes.update(outcomes)
    result.tickets_created.extend(created)


def _store_guarded(raw: bytes, source: Source, ruleset: Ruleset, renderer: Renderer, secret: bytes,
                   now: datetime, created: list[str], options: IngestOptions, batch: Batch) -> str:
    """store_mail in a savepoint; a failure that is the mail's fault quarantines it instead."""
    scratch = IngestResult()
    try:
        # this mail's audit events and log lines, kept for the batch's end, go with its savepoint
        with batch.unit(eager=True):
            outcome = store_mail(raw, source, ruleset, renderer, secret, now, scratch, options, batch)
    except _STORAGE_DOWN:
        raise
    except Exception as error:  # one bad mail never stops the line; the savepoint is undone
        if isinstance(error, peewee.IntegrityError) and _stored_meanwhile(raw):
            # another instance stored this mail between our dedupe check and our insert (two
            # ingesters on one folder): the unique key kept it once; here it is a duplicate
            log.info("%s uid %s was stored by another instance meanwhile", source.folder, source.uid)
            return "duplicate"
        log.exception("storing %s uid %s failed; quarantining it", source.folder, source.uid)
        with batch.unit(eager=True):
            return _quarantine(raw, source, f"ingest failure: {type(error).__name__}: {error}"[:1000], now)
    created.extend(scratch.tickets_created)
    return outcome


# ------------------------------------------------------------------------------------------------
# one mail


def classify_sender(parsed: ParsedMail, requester: str | None, ruleset: Ruleset) -> str:
    sender = parsed.from_addr
    if sender and requester and sender == requester:
        return "customer"
    if sender and ruleset.is_roster_member(sender):
        # a response to the customer only when it goes to the customer (support in Cc); a reply on
        # the tier thread (#ack, #note, …) is internal and must not stop the first-response clock
        addressed = set(parsed.to_addrs) | set(parsed.cc_addrs)
        return "agent" if requester and requester in addressed else "internal"
    return "other"


def store_mail(raw: bytes, source: Source, ruleset: Ruleset, renderer: Renderer, secret: bytes,
               now: datetime, result: IngestResult, options: IngestOptions = DEFAULT_OPTIONS,
               batch: Batch | None = None) -> str:
    """Store one raw message and act on it. Returns the outcome: "ticket", "reply", "limited" (a new
    conversation put on the sender's latest ticket: they reached their ticket limit), "duplicate",
    "own", "own-address", "machine", "bounce" or "quarantined". Call inside a transaction."""
    if len(raw) > options.max_message_bytes:
        return _quarantine(raw, source, f"too large: {len(raw)} bytes (limit {options.max_message_bytes})", now)
    try:
        parsed = parse_message(raw)
    except UnparseableMail as error:
        return _quarantine(raw, source, error.reason, now)
    crashpoints.hit("after-parse")

    dedupe_key, collision = dedupe.dedupe_key(parsed, raw)
    if dedupe_key is None:
        return "duplicate"
    if parsed.message_id and store_outbox.message_id_exists(parsed.message_id):
        # our own mail back: never a ticket
        return _own_mail(parsed, raw, source, dedupe_key, now, options, batch=batch)

    verdict = classify(parsed, raw)
    if verdict is not None and verdict.kind == "bounce":
        return _bounce(parsed, raw, source, dedupe_key, verdict, secret, now, options, batch=batch)

    match = find_ticket(parsed, ruleset.reference_prefix, now)
    if verdict is not None:  # machine mail: recorded, on its ticket if it threads, never answered
        _record_only(parsed, raw, source, dedupe_key, verdict.kind, verdict.reason, match, now, options, collision,
                     batch=batch)
        if match is not None:
            _hold_history(match.ticket, options)
        return "machine"
    ours = own_address(parsed.from_addr, ruleset)
    if ours is not None:  # our own or a group's address: likewise, and never acted on
        message = _record_only(parsed, raw, source, dedupe_key, "own-address", ours, match, now, options, collision,
                               batch=batch)
        if match is not None:
            _hold_history(match.ticket, options)
        audit.record(match.ticket if match is not None else None, now, parsed.from_addr, "mail-from-own-address",
                     reason=ours, message_id=parsed.message_id, stored_as=message.id, batch=batch)
        return "own-address"

    # an import replays history: the limit is for a flood arriving now, not for a mailbox's past
    limited = _at_ticket_limit(parsed, ruleset, now, batch=batch) if match is None and not options.history else None
    match = match or limited
    if match is None:
        requester = parsed.from_addr or "unknown"
        ticket = tickets.open_ticket(
            subject=parsed.subject, normalised_subject=normalise_subject(parsed.subject, ruleset.reference_prefix),
            requester=requester, requester_name=parsed.from_name, now=now,
            severity=ruleset.severity_for(parsed.subject, parsed.text, parsed.from_addr, parsed.headers),
            reference_prefix=ruleset.reference_prefix, reason="new conversation", batch=batch)
        # the ticket first, so the message row (the raw mail with it) is written once, ticket set
        message = _store(parsed, raw, source, dedupe_key, "customer", now, options, collision, ticket=ticket,
                         batch=batch)
        tickets.add_message(ticket, message, now, batch=batch)
        # similar tickets from other customers: one incident
        incidents.link_new_ticket(ticket, ruleset, now, batch=batch)
        # the customer is told once per ticket, capped; machine mail never gets here
        if ruleset.acknowledge_customers and not options.history:
            from escalate.outbound.notify import queue_acknowledgement

            queue_acknowledgement(ticket=ticket, message=message, ruleset=ruleset, renderer=renderer, secret=secret,
                                  now=now, batch=batch)
        result.tickets_created.append(ticket.ref)
        # the mail itself (subject, sender, text) stays out of the logs: `tickets show` has it
        logs.event(log, "ticket-opened", ticket=ticket.ref, severity=ticket.severity, folder=source.folder,
                   uid=source.uid, held=held_lines(batch))
        _hold_history(ticket, options)
        return "ticket"

    ticket = match.ticket
    if match.notification is not None:
        # what the member wrote is what is left once the notification's own lines are set aside:
        # the quote detector does not know every client's header above a quote (stored so too)
        parsed = dataclasses.replace(parsed, new_text=reply_text(parsed.new_text, match.notification.raw))
    kind = classify_sender(parsed, ticket.requester, ruleset)
    message = _store(parsed, raw, source, dedupe_key, kind, now, options, collision, ticket=ticket, batch=batch)
    _audit_threading(parsed, match, kind, ruleset, now, batch=batch)
    tickets.add_message(ticket, message, now, batch=batch)
    _hold_history(ticket, options)
    if options.history:
        pass  # a command in old mail was acted on (or not) back then
    elif kind != "other" or match.notification is not None:
        # a reply to one of our notifications — from a roster member or not (a forwarded
        # notification answered by someone else is refused and audited; replies.py says who is told)
        handle_commands(parsed, ticket, match.notification, ruleset, renderer, secret, now,
                        previous_secret=options.previous_secret, token_ttl=options.token_ttl, batch=batch)
    else:  # a stranger's mail is kept on the ticket as a note, and can neither act nor be answered
        from escalate.tickets.commands import find_commands

        if find_commands(parsed.new_text):
            audit.record(ticket, now, parsed.from_addr or "unknown", "command-refused",
                         reason="sender not on ticket", message_id=parsed.message_id, batch=batch)
    return "limited" if limited is not None else "reply"


def _at_ticket_limit(parsed: ParsedMail, ruleset: Ruleset, now: datetime, batch: Batch | None = None) -> Match | None:
    """The sender's latest ticket, when one more ticket would pass its limit (ratelimit.py says why
    its mail goes there and is not held); recorded on that ticket. Team members have no limit."""
    if not parsed.from_addr:
        return None
    limited = ratelimit.sender_ticket_limit(parsed.from_addr, now)
    # the roster only asked of an address at its limit: parsing each new sender costs more than the query
    if limited is None or ruleset.is_roster_member(parsed.from_addr):
        return None
    reason, ticket_id = limited
    match = Match(rows.get_by_id(Ticket, ticket_id), "sender-limit")
    audit.record(match.ticket, now, parsed.from_addr, "sender-ticket-limit", reason=reason, subject=parsed.subject,
                 message_id=parsed.message_id, batch=batch)
    return match


def _record_only(parsed: ParsedMail, raw: bytes, source: Source, dedupe_key: str, kind: str, reason: str,
                 match: Match | None, now: datetime, options: IngestOptions, collision: bool,
                 batch: Batch | None = None) -> Message:
    """Keep a mail nobody answers, on its ticket when it threads to one."""
    message = _store(parsed, raw, source, dedupe_key, kind, now, options, collision, reason,
                     ticket=match.ticket if match is not None else None, batch=batch)
    if match is not None:
        tickets.add_message(match.ticket, message, now, batch=batch)
    return message


LATE = timedelta(hours=1)  # mail the server has held longer than this came while escalate was not looking


def message_time(fetched: Fetched, now: datetime) -> datetime:
    """When a message counts as having come, for the ticket's clocks: an imported message's own
    time; for live mail the time the IMAP server received it when that is over an hour ago (the
    daemon was down, or the mailbox unreachable, for a while), so its clocks show how long the
    customer has really waited; else now. Never a time in the future (a clock skewed server) and
    never used for order or deduplication (the folder's UIDs and the mail's identity are)."""
    if fetched.at is not None:
        return fetched.at
    if fetched.arrived_at is not None and fetched.arrived_at <= now - LATE:
        return fetched.arrived_at
    return now


def _hold_history(ticket: Ticket, options: IngestOptions) -> None:
    """An imported ticket is not due until the import has decided its status from its whole
    history (history.py): a tick meanwhile, or a crash before that, evaluates nothing old."""
    if options.history:
        ticket.next_due_at = None
        rows.update(ticket, "next_due_at")


def _stored_meanwhile(raw: bytes) -> bool:
    """After a unique-key conflict: is this mail stored now (by another writer)?"""
    try:
        return dedupe.dedupe_key(parse_message(raw), raw)[0] is None
    except Exception:  # unparseable after all: not a duplicate, the caller quarantines it
        return False


def _audit_threading(parsed: ParsedMail, match: Match, kind: str, ruleset: Ruleset, now: datetime,
                     batch: Batch | None = None) -> None:
    actor = parsed.from_addr or "unknown"
    refs = list(dict.fromkeys(subject_refs(parsed.subject, ruleset.reference_prefix)))
    if match.how == "subject-reference" and len(refs) > 1:
        audit.record(match.ticket, now, actor, "several-references", used=match.ticket.ref, found=refs,
                     message_id=parsed.message_id, batch=batch)  # of several ticket tags, the earliest that exists wins
    if kind == "other":
        audit.record(match.ticket, now, actor, "sender-not-on-ticket", how=match.how, message_id=parsed.message_id,
                     batch=batch)


def _own_mail(parsed: ParsedMail, raw: bytes, source: Source, dedupe_key: str, now: datetime,
              options: IngestOptions, batch: Batch | None = None) -> str:
    _store(parsed, raw, source, dedupe_key, "own", now, options, False, "our own notification came back", batch=batch)
    sent = Outbox.get(Outbox.message_id == parsed.message_id)
    if sent.ticket_id is not None:
        audit.record(sent.ticket, now, "escalate", "own-mail-returned", outbox=sent.id, folder=source.folder,
                     batch=batch)
    return "own"


def _bounce(parsed: ParsedMail, raw: bytes, source: Source, dedupe_key: str, verdict: Verdict, secret: bytes,
            now: datetime, options: IngestOptions, batch: Batch | None = None) -> str:
    """A bounce is recorded; if it bounces one of our notifications, against that notification
    and member: VERP address first (cannot be forged), else the DSN's original Message-ID."""
    message = _store(parsed, raw, source, dedupe_key, "bounce", now, options, False, verdict.reason, batch=batch)
    target = _bounce_target(parsed, verdict, secret)
    if target is None:
        return "bounce"
    row, delivery = target
    if delivery is not None:
        outbox.record_bounce(delivery.mail_from, secret, now, verdict.reason)
    message.bounce_outbox_id, message.bounce_recipient = row.id, delivery.recipient if delivery else None
    message.save(only=[Message.bounce_outbox_id, Message.bounce_recipient])
    if row.ticket_id is not None:
        audit.record(row.ticket, now, "escalate", "notification-bounced", outbox=row.id,
                     recipient=delivery.recipient if delivery else None, reason=verdict.reason,
                     message_id=parsed.message_id, batch=batch)
    return "bounce"


_ENVELOPE_HEADERS = ("delivered-to", "x-original-to", "envelope-to", "x-envelope-to", "to")


def _bounce_target(parsed: ParsedMail, verdict: Verdict, secret: bytes) -> tuple[Outbox, Delivery | None] | None:
    addresses = list(parsed.to_addrs)
    for name, value in parsed.headers:
        if name.lower() in _ENVELOPE_HEADERS:
            addresses += [token.strip("<>") for token in value.replace(",", " ").split() if "@" in token]
    for address in dict.fromkeys(addresses):
        target = outbox.bounce_target(address, secret)
        if target is not None:
            return target
    bounce = verdict.bounce
    if bounce is None or not bounce.original_message_ids:
        return None
    row = Outbox.select().where(Outbox.message_id.in_(list(bounce.original_message_ids))).first()
    if row is None:
        return None
    deliveries = list(Delivery.select().where(Delivery.outbox == row))
    failed = set(bounce.failed_recipients)
    named = [d for d in deliveries if d.recipient.lower() in failed]
    if len(named) == 1 or (not named and len(deliveries) == 1):
        return row, (named or deliveries)[0]
    return row, None


def _store(parsed: ParsedMail, raw: bytes, source: Source, dedupe_key: str, kind: str, now: datetime,
           options: IngestOptions = DEFAULT_OPTIONS, collision: bool = False,
           machine_reason: str | None = None, ticket: Ticket | None = None, batch: Batch | None = None) -> Message:
    message = rows.create(
        Message, ticket=ticket, dedupe_key=dedupe_key, message_id=parsed.message_id, sha256=parsed.sha256, kind=kind,
        folder=source.folder, uidvalidity=source.uidvalidity, uid=source.uid,
        from_addr=parsed.from_addr, from_name=parsed.from_name, subject=parsed.subject,
        sent_at=parsed.date, received_at=now, in_reply_to=list(parsed.in_reply_to),
        references=list(parsed.references), body_text=parsed.text, new_text=parsed.new_text,
        defects=list(parsed.defects) + (["message-id collision"] if collision else []), raw=raw,
        machine_reason=machine_reason, collision=collision,
    )
    if collision:
        audit.record(None, now, parsed.from_addr or "unknown", "message-id-collision",
                     message_id=parsed.message_id, sha256=parsed.sha256, stored_as=message.id, batch=batch)
    if options.attachments is not None and parsed.attachments:
        options.attachments.save_all(message, parsed.attachments)
    return message


def _quarantine(raw: bytes, source: Source, reason: str, now: datetime) -> str:
    """Keep the raw bytes with the reason, once per distinct mail (a rescan does not add a second)."""
    sha256 = hashlib.sha256(raw).hexdigest()
    if Quarantine.select().where(Quarantine.sha256 == sha256).exists():
        return "duplicate"
    Quarantine.create(reason=reason, received_at=now, folder=source.folder, uidvalidity=source.uidvalidity,
                      uid=source.uid, sha256=sha256, raw=raw, status="held")
    log.warning("quarantined %s uid %s: %s", source.folder, source.uid, reason)
    return "quarantined"


# ------------------------------------------------------------------------------------------------
# history import


def import_messages(messages: Callable[[], Iterable[tuple[datetime | None, bytes]]], ruleset: Ruleset,
                    renderer: Renderer, secret: bytes, now: datetime, options: IngestOptions = DEFAULT_OPTIONS,
                    batch_size: int = 100, progress: Callable[[int], None] | None = None) -> IngestResult:
    """Store raw messages from an mbox or Maildir (see mailfiles.py, history.py) in batches, like
    ingest; each (time, raw bytes) is stored as having come at its time (`now` when None)."""
    result = IngestResult()
    batch: list[Fetched] = []
    for at, raw in messages():
        batch.append(Fetched(0, raw, len(raw), at=at))
        if len(batch) >= batch_size:
            store_batch(batch, Source("import", None, None), ruleset, renderer, secret, now, result, options)
            if progress:
                progress(len(batch))
            batch = []
    if batch:
        store_batch(batch, Source("import", None, None), ruleset, renderer, secret, now, result, options)
        if progress:
            progress(len(batch))
    return result
