"""`escalate import PATH`: history stays history.

Each imported message counts as having come at its own `Date` (the import time when it has none,
an unreadable one, or one in the future), and the messages are stored oldest first, so replies
thread onto the conversations they answer and every ticket's clocks have their real ages. Then
each ticket the import opened gets its status from its history: a conversation whose last message
is older than the cut-off (`--open-since`, by default the import time minus the longest resolution
target) is over — it is closed and never evaluated; the others stay open and are evaluated by the
next tick like any ticket. Nothing is sent for what happened back then: no acknowledgements, and
commands in old replies are not acted on (ingest.IngestOptions.history).
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Iterator

from escalate.ingest.pipeline import IngestOptions, IngestResult, import_messages
from escalate.mail.parse import date_of
from escalate.outbound.templates import Renderer
from escalate.rules.model import Ruleset
from escalate.store.db import write_transaction
from escalate.store.models import Message, Ticket
from escalate.tickets import lifecycle as tickets

ACTOR = "import"
# rules without any resolution target: a conversation silent for a week is taken as over
DEFAULT_OPEN_WINDOW = timedelta(days=7)
# tickets with a message from an import (ingest stores them in the folder "import")
_IMPORTED = Message.select(Message.ticket).where((Message.folder == "import") & Message.ticket.is_null(False))
_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def message_time(raw: bytes, imported_at: datetime) -> datetime:
    """The message's own Date; the import time for none, an unreadable one, or one in the future."""
    end = raw.find(b"\n\n")
    end2 = raw.find(b"\r\n\r\n")
    cut = min((e for e in (end, end2) if e >= 0), default=len(raw))
    try:
        values = _HEADERS.parsebytes(raw[:cut + 2]).get_all("Date") or []
    except Exception:  # parse.py quarantines what cannot be read; here only the time is asked
        return imported_at
    moment = date_of([str(v) for v in values])
    return moment if moment is not None and moment <= imported_at else imported_at


def in_date_order(keys: list[Any], read: Callable[[Any], bytes | None],
                  imported_at: datetime) -> Iterator[tuple[datetime, bytes]]:
    """Every message with its time, oldest first (ties in the store's order). One pass to learn the
    times (only they are kept), a second to hand out the bytes: a large mbox is never held whole."""
    times = []
    for index, key in enumerate(keys):
        raw = read(key)
        if raw is not None:
            times.append((message_time(raw, imported_at), index))
    times.sort()
    for moment, index in times:
        raw = read(keys[index])
        if raw is not None:
            yield moment, raw


def default_open_since(ruleset: Ruleset, imported_at: datetime) -> datetime:
    """The import time minus the longest resolution target (in calendar time: 1w is 7 days)."""
    targets = [timedelta(seconds=s.resolution.total_seconds()) for s in ruleset.severities if s.resolution]
    return imported_at - (max(targets) if targets else DEFAULT_OPEN_WINDOW)


@dataclass
class ImportReport:
    result: IngestResult
    open_since: datetime
    opened: list[str] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)


def import_history(keys: list[Any], read: Callable[[Any], bytes | None], ruleset: Ruleset,
                   renderer: Renderer, secret: bytes, now: datetime, options: IngestOptions,
                   open_since: datetime | None = None,
                   progress: Callable[[int], None] | None = None) -> ImportReport:
    """Store the messages at their own times, then close the conversations that ended before
    `open_since` (default: default_open_since)."""
    options = IngestOptions(**{**options.__dict__, "history": True})
    result = import_messages(lambda: in_date_order(keys, read, now), ruleset, renderer, secret, now,
                             options, progress=progress)
    report = ImportReport(result, open_since or default_open_since(ruleset, now))
    _settle(report, now)
    return report


def _settle(report: ImportReport, now: datetime) -> None:
    """Decide the status of every ticket an import left undecided (this one's, or one a crash
    interrupted): closed if its conversation ended before the cut-off, else open and due now."""
    undecided = (Ticket.select().where(Ticket.next_due_at.is_null() & Ticket.status.in_(("new", "open"))
                                       & ~Ticket.drill & Ticket.id.in_(_IMPORTED))
                 .order_by(Ticket.id))
    with write_transaction():
        for ticket in undecided:
            _settle_one(report, ticket, now)


def _settle_one(report: ImportReport, ticket: Ticket, now: datetime) -> None:
    last = max(t for t in (ticket.created_at, ticket.last_customer_message_at, ticket.last_agent_message_at) if t)
    if last >= report.open_since:
        Ticket.update(next_due_at=now).where(Ticket.id == ticket.id).execute()  # evaluated at the next tick
        report.opened.append(ticket.ref)
        return
    tickets.close_imported(ticket, last=last, now=now, by=ACTOR,
                           reason=f"history: the conversation ended before {report.open_since.isoformat()}")
    report.closed.append(ticket.ref)
