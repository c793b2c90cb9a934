"""Service-level targets over many tickets at once: which broke their first-response or
resolution target, counted in the severity's working time with waits on the customer left out.

The report and `tickets list --overdue` ask this for thousands of tickets, so it works in two
steps. SQL keeps only the tickets whose wall-clock time already exceeds the target (working time
never exceeds wall-clock time, so no breach is missed); then each remaining ticket is checked
exactly against its calendar through cumulative working seconds — a binary search per moment
instead of walking the calendar day by day per ticket (rules/clocks.py does the same sums one
ticket at a time for the engine).
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import peewee

from escalate.rules.calendar import Calendar
from escalate.rules.model import Ruleset
from escalate.store.models import ACTIVE_STATUSES, Ticket, database

TARGETS = ("first_response", "resolution")
_UNIX_JULIAN_DAY = 2440587.5


def epoch(expression) -> peewee.Node:
    """SQL for a stored time as seconds since 1970 (UTC), so durations are computed by the database
    rather than by parsing a datetime per row in Python."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        return peewee.fn.date_part("epoch", expression)
    return (peewee.fn.julianday(expression) - _UNIX_JULIAN_DAY) * 86400.0


def db_time(moment: datetime) -> str:
    """A moment in the form times are stored (naive UTC), for SQL that compares or computes with it."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ")


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


class WorkingTime:
    """Cumulative working seconds of one calendar from `start` to `end`: `between(a, b)` in O(log n)."""

    def __init__(self, calendar: Calendar, start: float, end: float):
        self.always = calendar.always
        self._opens: list[float] = []
        self._closes: list[float] = []
        self._before: list[float] = []  # working seconds before each interval opens
        if self.always:
            return
        first = datetime.fromtimestamp(start, timezone.utc).date() - timedelta(days=2)
        last = datetime.fromtimestamp(end, timezone.utc).date() + timedelta(days=2)
        total, day = 0.0, first
        while day <= last:
            for open_at, close_at in calendar.intervals_on(day):
                self._opens.append(open_at.timestamp())
                self._closes.append(close_at.timestamp())
                self._before.append(total)
                total += close_at.timestamp() - open_at.timestamp()
            day += timedelta(days=1)

    def _cumulative(self, moment: float) -> float:
        index = bisect.bisect_right(self._opens, moment) - 1
        if index < 0:
            return 0.0
        return self._before[index] + min(moment, self._closes[index]) - self._opens[index]

    def between(self, start: float, end: float) -> float:
        if end <= start:
            return 0.0
        if self.always:
            return end - start
        return self._cumulative(end) - self._cumulative(start)


@dataclass(frozen=True)
class Breach:
    ticket_id: int
    severity: str
    tier: int | None
    target: str  # "first_response" or "resolution"
    over_seconds: float  # how far past the target, in working time


def _end_of(target: str, now_sql: str):
    """When the target's clock stopped: the first response / the resolution, or now if it has not."""
    if target == "first_response":
        return peewee.fn.COALESCE(Ticket.first_response_at, now_sql)
    done = Ticket.status.in_(("resolved", "closed"))
    return peewee.Case(None, [(done, peewee.fn.COALESCE(Ticket.resolved_at, now_sql))], now_sql)


def _pauses(periods, waiting_since: float | None, now: float) -> list[tuple[float, float]]:
    pauses = []
    for start, end in (json.loads(periods) if isinstance(periods, str) else periods or []):
        pauses.append((datetime.fromisoformat(start).timestamp(), datetime.fromisoformat(end).timestamp()))
    if waiting_since is not None:
        pauses.append((waiting_since, now))
    return pauses


def breaches(ruleset: Ruleset, where: peewee.Expression | None, now: datetime,
             targets: tuple[str, ...] = TARGETS) -> list[Breach]:
    """Every ticket matching `where` that broke one of `targets` by `now` (or when its clock stopped)."""
    found: list[Breach] = []
    now_sql, now_s = db_time(now), _seconds(now)
    for target in targets:
        limits = {s.name: s.target(target).total_seconds() for s in ruleset.severities if s.target(target)}
        if not limits:
            continue
        start, end = epoch(Ticket.created_at), epoch(_end_of(target, now_sql))
        # wall-clock time past the target already: the only tickets that can have broken it
        over_wall = peewee.Case(Ticket.severity, [(name, limit) for name, limit in limits.items()], None)
        condition = (end - start) > over_wall
        if where is not None:
            condition &= where
        # raw rows: seconds stay floats and the JSON stays text, with no per-value conversion by peewee
        rows = database.execute(Ticket.select(Ticket.id, Ticket.severity, Ticket.tier, start, end,
                                              Ticket.waiting_periods, epoch(Ticket.waiting_since))
                                .where(condition)).fetchall()
        if not rows:
            continue
        span = (min(r[3] for r in rows), max(max(r[4] for r in rows), now_s))
        clocks: dict[str, WorkingTime] = {}
        for ticket_id, severity, tier, began, stopped, periods, waiting_since in rows:
            calendar = ruleset.calendar_for_severity(severity)
            pauses = _pauses(periods, waiting_since, now_s) if (periods not in (None, "", "[]") or waiting_since) else []
            if calendar.always and not pauses:
                worked = stopped - began
            else:
                clock = clocks.get(calendar.name) or clocks.setdefault(calendar.name, WorkingTime(calendar, *span))
                worked = clock.between(began, stopped)
                for pause_start, pause_end in pauses:
                    worked -= clock.between(max(pause_start, began), min(pause_end, stopped))
            over = worked - limits[severity]
            if over > 0:
                found.append(Breach(ticket_id, severity, tier, target, over))
    return found


def overdue_ids(ruleset: Ruleset, now: datetime) -> set[int]:
    """Open tickets past their first-response or resolution target now (drills have no targets)."""
    where = Ticket.status.in_(ACTIVE_STATUSES) & (Ticket.drill == False)  # noqa: E712 -- peewee SQL
    return {b.ticket_id for b in breaches(ruleset, where, now)}
