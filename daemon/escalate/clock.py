"""The current time in one place, so `--now` and ESCALATE_NOW reach every part of the daemon.

Time is a parameter, never a sleep: tests and `rules simulate` move the clock forward by
passing a time, the same way GoAlert's engine tests fast-forward the database clock.
"""

from __future__ import annotations

import os
import zoneinfo
from datetime import datetime, timezone, tzinfo

from escalate.errors import InputError

_fixed: datetime | None = None
# The zone a person reads times in: the rules' `timezone` (set when rules are loaded; UTC before).
_display: tzinfo = timezone.utc


class BadTime(InputError, ValueError):
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


def set_display_zone(name: str | tzinfo | None) -> None:
    """Show times in this zone from now on (the loaded rules' `timezone`; None: UTC)."""
    global _display
    _display = timezone.utc if name in (None, "UTC") else (zoneinfo.ZoneInfo(name) if isinstance(name, str) else name)


def display_zone() -> tzinfo:
    return _display


def shown(value: datetime, zone: tzinfo | None = None) -> str:
    """A time as a person reads it, in the team's zone with its abbreviation: "2026-11-02 10:00 CET"
    (a zone without an abbreviation shows its offset, "+03"). Naive times are UTC. Formatted by
    hand: strftime costs twice as much, and a tick writes several per notification."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    local = value.astimezone(zone or _display)
    return "%04d-%02d-%02d %02d:%02d %s" % (local.year, local.month, local.day, local.hour, local.minute,
                                           local.tzname() or _offset(local))


def _offset(local: datetime) -> str:
    minutes = int(local.utcoffset().total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return "%s%02d:%02d" % (sign, abs(minutes) // 60, abs(minutes) % 60)


def shown_iso(text: str | None, empty: str = "-") -> str:
    """An ISO time from a JSON view (clock.iso) as `shown` writes it, or `empty`."""
    return shown(datetime.fromisoformat(text)) if text else empty


def minutes_utc(value: datetime) -> str:
    """A UTC time as mail shows it: "2026-11-02 09:00 UTC" (formatted by hand: strftime costs
    twice as much, and a tick writes several per notification)."""
    if value.tzinfo is not None and value.tzinfo is not timezone.utc:  # naive times are UTC already
        value = value.astimezone(timezone.utc)
    return "%04d-%02d-%02d %02d:%02d UTC" % (value.year, value.month, value.day, value.hour, value.minute)
