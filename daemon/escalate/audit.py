"""The audit log: every change of state is an event saying who, what, when and why."""

from __future__ import annotations

import contextlib
import threading
from datetime import datetime
from typing import Any, Iterator

from . import rows
from .models import Event, Ticket

_local = threading.local()


def record(ticket: Ticket | None, at: datetime, actor: str, action: str,
           rule: str | None = None, **detail: Any) -> None:
    """Write one audit event; call it inside the transaction that makes the change it describes.
    (rows.create: every ingested mail writes one or two, see rows.py.) Inside `deferred` (a tick
    batch) the event is kept and written with the batch's others by `DeferredEvents.flush`."""
    batch: DeferredEvents | None = getattr(_local, "batch", None)
    if batch is not None:
        batch.add({"ticket": ticket, "at": at, "actor": actor, "action": action, "rule": rule, "detail": detail})
        return
    rows.create(Event, ticket=ticket, at=at, actor=actor, action=action, rule=rule, detail=detail)


class DeferredEvents:
    """The audit events one tick or ingest batch records, written in one executemany before it
    commits instead of one INSERT each. A ticket whose evaluation fails, or a mail whose storing
    fails, drops its events with its savepoint (db.savepoint calls `mark`/`rollback`), as
    notify.DeferredMail does for its mail."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def mark(self) -> int:
        return len(self.events)

    def rollback(self, mark: int) -> None:
        del self.events[mark:]

    def flush(self) -> None:
        pending, self.events = self.events, []
        rows.insert_many(Event, pending)


def pending() -> DeferredEvents | None:
    return getattr(_local, "batch", None)


@contextlib.contextmanager
def deferred() -> Iterator[DeferredEvents]:
    """Within this block (one tick or ingest batch, inside its transaction), audit events of this thread are
    written by `DeferredEvents.flush`, which the caller runs before the transaction commits."""
    batch = _local.batch = DeferredEvents()
    try:
        yield batch
    finally:
        _local.batch = None
