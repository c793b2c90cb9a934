"""What a delivery's outcome does to its outbox row: the delivery states, the back-off between
attempts, and settling each row's status from its deliveries. Shared by the mail sender
(outbox.py), the chat sender (chatsend.py) and the renderer (render.py), which records a mail it
cannot render as that row's failure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

import peewee

from escalate.outbound import chat
from escalate.store import models
from escalate.store import outbox as store_outbox
from escalate.store.models import Delivery, Outbox

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=10)

PENDING = "queued"
WAITING = "rendering"  # a delivery whose mail is not rendered yet (render.py owns it until it is)
# chat posts are deliveries too ("chat:<name>"), posted by chatsend.py: never an SMTP recipient
IS_MAIL = ~Delivery.recipient.startswith(chat.RECIPIENT_PREFIX)
DELIVERY_FAILURES = ("failed", "refused", "bounced")


@dataclass
class SendResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    connections: int = 0
    errors: list[str] = field(default_factory=list)
    failed_outbox_ids: list[int] = field(default_factory=list)


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failed attempt: 30 s, 1 min, 2 min, … capped at 10 min."""
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)


def chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def lock_outbox_rows(outbox_ids: set[int]) -> None:
    """PostgreSQL: lock the outbox rows a flush settles, in id order, before reading their deliveries.

    Two instances recording the last two recipients of one row at once would otherwise each see the
    other's delivery still pending in their snapshot, and neither would mark the row sent. Locked,
    the second waits for the first to commit and then reads its delivery as sent."""
    database = models.database.obj
    if isinstance(database, peewee.SqliteDatabase) or not outbox_ids:
        return  # one writer at a time already (BEGIN IMMEDIATE)
    for chunk in chunks(sorted(outbox_ids), 500):
        store_outbox.lock_rows(chunk)


def settle_all_sent(outbox_ids: set[int], now: datetime) -> set[int]:
    """The common case in one statement: rows whose every recipient now has the mail are sent.
    Returns the rows it could not settle so (another recipient failed or is pending) for `settle`."""
    left: set[int] = set()
    for chunk in chunks(sorted(outbox_ids), 500):
        changed = store_outbox.settle_sent(chunk, now)
        if changed < len(chunk):
            left.update(row_id for (row_id,) in Outbox.select(Outbox.id)
                        .where(Outbox.id.in_(chunk) & (Outbox.status == PENDING)).tuples())
    return left


def settle(outbox_ids: Iterable[int], now: datetime, on_failed: Callable[[Outbox, datetime], None] | None = None,
           result: SendResult | None = None) -> None:
    """Set each outbox row's status from its deliveries (inside the caller's transaction).

    queued while any recipient is pending; sent when every recipient got it (or was deliberately
    skipped); failed when a recipient failed and none is pending — `on_failed` is then called once,
    on the transition, to tell a person.
    """
    ids = list(outbox_ids)
    for chunk in chunks(ids, 500):
        deliveries: dict[int, list[Delivery]] = {}
        for delivery in Delivery.select().where(Delivery.outbox.in_(chunk)):
            deliveries.setdefault(delivery.outbox_id, []).append(delivery)
        uniform_sent: list[int] = []
        others: list[int] = []
        for row_id, status in Outbox.select(Outbox.id, Outbox.status).where(Outbox.id.in_(chunk)).tuples():
            if status == PENDING and {d.status for d in deliveries.get(row_id, [])} == {"sent"}:
                uniform_sent.append(row_id)  # the common case, written in one statement below
            else:
                others.append(row_id)
        # the rest one by one (the full row, for on_failed), without loading mail bodies for the many
        for row in (Outbox.select().where(Outbox.id.in_(others)) if others else ()):
            mine = deliveries.get(row.id, [])
            statuses = {d.status for d in mine}
            if WAITING in statuses:
                # its mail is not rendered yet (a chat post recorded first): render.py owns the row until it is
                continue
            attempts = max((d.attempts for d in mine), default=row.attempts)
            before = row.status
            row.attempts = attempts
            if PENDING in statuses:
                row.status = PENDING
                row.next_attempt_at = min(d.next_attempt_at for d in mine if d.status == PENDING)
            elif statuses & set(DELIVERY_FAILURES):
                row.status = "failed"
            elif statuses and statuses <= {"suppressed"}:
                row.status = "suppressed"
            elif statuses and statuses <= {"cancelled"}:
                row.status = "cancelled"
            elif "sent" in statuses:
                row.status = "sent"
            failures = [f"{d.recipient}: {d.last_error}" for d in mine
                        if d.status in DELIVERY_FAILURES or d.status == PENDING and d.last_error]
            row.last_error = "; ".join(failures)[:2000] or None
            sent_times = [d.sent_at for d in mine if d.sent_at]
            row.sent_at = max(sent_times) if sent_times else None
            row.save(only=[Outbox.status, Outbox.attempts, Outbox.next_attempt_at, Outbox.last_error, Outbox.sent_at])
            if row.status == "failed" and before != "failed":
                if result is not None:
                    result.failed_outbox_ids.append(row.id)
                if on_failed is not None:
                    on_failed(row, now)
        by_time: dict[tuple, list[int]] = {}
        for row_id in uniform_sent:
            mine = deliveries[row_id]
            by_time.setdefault((max(d.sent_at for d in mine), max(d.attempts for d in mine)), []).append(row_id)
        for (at, attempts), group in by_time.items():
            Outbox.update(status="sent", sent_at=at, attempts=attempts, last_error=None).where(Outbox.id.in_(group)).execute()
