"""Ticket clocks in business time, paused while the ticket waits on the customer.

A clock starts at some moment (creation, the last agent message …) and counts the working time
of the ticket's severity's calendar, minus the periods the ticket spent waiting on the customer.
`due(...)` answers when such a clock reaches a threshold — exactly, so the engine can store it as
the ticket's next due time — and `elapsed(...)` how much it has counted by a given moment (for
`rules explain`). Thresholds are rules.yaml durations: their days and weeks are working days and
weeks of the calendar (Calendar.working).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from escalate.rules.calendar import Calendar
from escalate.rules.facts import TicketFacts

if TYPE_CHECKING:
    from escalate.rules.model import Ruleset


def calendar_of(facts: TicketFacts, ruleset: Ruleset) -> Calendar:
    """The calendar of the ticket's severity (the default severity's when it was removed)."""
    return ruleset.calendar_for_severity(facts.severity)


def _pauses(facts: TicketFacts, start: datetime) -> list[tuple[datetime, datetime]]:
    if not facts.waiting_periods:  # most tickets never waited on the customer
        return []
    return sorted((max(a, start), b) for a, b in facts.waiting_periods if b > start)


def due(facts: TicketFacts, ruleset: Ruleset, start: datetime, threshold: timedelta, *, pausable: bool = True) -> datetime | None:
    """When the clock started at `start` reaches `threshold`; None while it is paused (waiting).

    A paused clock has no due time: the ticket is evaluated again when its status changes.
    """
    if pausable and facts.status == "waiting":
        return None
    calendar = calendar_of(facts, ruleset)
    remaining = calendar.working(threshold)  # "1d" is a working day of this calendar
    cursor = start
    if pausable:
        for pause_start, pause_end in _pauses(facts, start):
            counted = calendar.business_time(cursor, pause_start)
            if counted >= remaining:
                return calendar.add(cursor, remaining)
            remaining -= counted
            cursor = max(cursor, pause_end)
    return calendar.add(cursor, remaining)


def elapsed(facts: TicketFacts, ruleset: Ruleset, start: datetime, now: datetime, *, pausable: bool = True) -> timedelta:
    """Working time the clock started at `start` has counted by `now`, pauses left out."""
    calendar = calendar_of(facts, ruleset)
    total = calendar.business_time(start, now)
    if pausable:
        periods = list(facts.waiting_periods)
        if facts.status == "waiting" and facts.waiting_since is not None:
            periods.append((facts.waiting_since, now))
        for pause_start, pause_end in periods:
            total -= calendar.business_time(max(pause_start, start), min(pause_end, now))
    return max(total, timedelta(0))
