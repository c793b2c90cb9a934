"""The audit log: every change of state is an event saying who, what, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import rows
from .models import Event, Ticket


def record(ticket: Ticket | None, at: datetime, actor: str, action: str,
           rule: str | None = None, **detail: Any) -> Event:
    """Write one audit event; call it inside the transaction that makes the change it describes.
    (rows.create: every ingested mail writes one or two, see rows.py.)"""
    return rows.create(Event, ticket=ticket, at=at, actor=actor, action=action, rule=rule, detail=detail)
