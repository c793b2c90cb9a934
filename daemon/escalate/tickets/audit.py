"""The audit log: every change of state is an event saying who, what, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.store import rows
from escalate.store.models import Event, Ticket

if TYPE_CHECKING:
    from escalate.store.batch import Batch


def record(ticket: Ticket | None, at: datetime, actor: str, action: str,
           rule: str | None = None, *, batch: Batch | None = None, **detail: Any) -> None:
    """Write one audit event; call it inside the transaction that makes the change it describes.
    (rows.create: every ingested mail writes one or two, see rows.py.) With a `batch` (a tick or
    ingest batch) the event is kept and written with the batch's others by `Batch.flush`."""
    if batch is not None:
        batch.audit({"ticket": ticket, "at": at, "actor": actor, "action": action, "rule": rule, "detail": detail})
        return
    rows.create(Event, ticket=ticket, at=at, actor=actor, action=action, rule=rule, detail=detail)
