"""The audit log: every change of state is an event saying who, what, when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from . import prepared
from .models import Event, Ticket


def record(ticket: Ticket | None, at: datetime, actor: str, action: str,
           rule: str | None = None, **detail: Any) -> Event:
    """Write one audit event; call it inside the transaction that makes the change it describes."""
    values = {"ticket": ticket, "at": at, "actor": actor, "action": action, "rule": rule, "detail": detail}
    # the tick records an event per escalation step: a prepared statement, not peewee's per-call SQL
    return Event(id=prepared.insert(Event, values), **values)
