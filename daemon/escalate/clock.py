"""The current time in one place, so `--now` and ESCALATE_NOW reach every part of the daemon.

Time is a parameter, never a sleep: tests and `rules simulate` move the clock forward by
passing a time, the same way GoAlert's engine tests fast-forward the database clock.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

_fixed: datetime | None = None


class BadTime(ValueError):
    """A `--now` / ESCALATE_NOW value that is not an ISO-8601 time."""


def parse_time(text: str) -> datetime:
    """Parse ISO-8601; a time without an offset is taken as UTC. Returns an aware UTC datetime."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadTime(f'expected an ISO-8601 time like "2026-11-02T09:00:00+00:00", got "{text}"') from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def set_now(value: datetime | None) -> None:
    """Freeze the clock at `value` (None: follow the environment or the real clock again)."""
    global _fixed
    _fixed = value.astimezone(timezone.utc) if value is not None else None


def now() -> datetime:
    """The current time as an aware UTC datetime: `--now`, else ESCALATE_NOW, else the real clock."""
    if _fixed is not None:
        return _fixed
    env = os.environ.get("ESCALATE_NOW")
    if env:
        return parse_time(env)
    return datetime.now(timezone.utc)


def iso(value: datetime | None) -> str | None:
    """The one textual form of a time in JSON and logs."""
    return value.astimezone(timezone.utc).isoformat() if value is not None else None


def minutes_utc(value: datetime) -> str:
    """A UTC time as mail shows it: "2026-11-02 09:00 UTC" (formatted by hand: strftime costs
    twice as much, and a tick writes several per notification)."""
    if value.tzinfo is not None and value.tzinfo is not timezone.utc:  # naive times are UTC already
        value = value.astimezone(timezone.utc)
    return "%04d-%02d-%02d %02d:%02d UTC" % (value.year, value.month, value.day, value.hour, value.minute)
