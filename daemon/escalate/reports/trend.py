"""The report's trend: escalations, breaches and time to acknowledge per week (per day for a
window shorter than two weeks), each beside the same stretch one period earlier.

Weeks are ISO weeks, Monday 00:00 to Monday 00:00 in the team's zone (the rules' `timezone`);
days run midnight to midnight there. The window's first and last bucket may be part of one.
The previous period has the window's length and ends where the window begins; each bucket is
paired with the stretch exactly that length earlier, so a pair covers the same amount of time
(with a window of whole weeks or days the pair is the same weekday hours a period apart).

A ticket belongs to the bucket it was opened in, as everywhere in the report, so the buckets
add up to the report's totals. The cost is three queries over both periods' tickets — their
opening times, their acknowledgements, their breaches — and one pass over the rows; the bucket
of a ticket is found by a binary search over the boundaries in the form the database stores
them, which compares exactly as the window's own condition does.
"""

from __future__ import annotations

import bisect
import zoneinfo
from datetime import datetime, time, timedelta, timezone, tzinfo
from typing import Any

from escalate.clock import iso
from escalate.reports.window import Scope, acknowledged_escalations, created_at_column, durations, rows, share
from escalate.rules.model import Ruleset
from escalate.store.models import Ticket
from escalate.tickets import sla

DAILY_BELOW = timedelta(days=14)  # a shorter window is shown per day, a longer one per week


def zone_of(ruleset: Ruleset) -> tzinfo:
    return timezone.utc if ruleset.timezone in (None, "", "UTC") else zoneinfo.ZoneInfo(ruleset.timezone)


def boundaries(since: datetime, until: datetime, zone: tzinfo, unit: str) -> list[datetime]:
    """`since`, each local midnight ("day") or Monday midnight ("week") strictly inside the window,
    and `until`: the edges of the window's buckets, as UTC times."""
    step = timedelta(days=7 if unit == "week" else 1)
    day = since.astimezone(zone).date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    edges = [since]
    while True:
        day += step
        edge = datetime.combine(day, time(0), zone).astimezone(timezone.utc)
        if edge >= until:
            break
        if edge > since:
            edges.append(edge)
    edges.append(until)
    return edges


def label(start: datetime, zone: tzinfo, unit: str) -> str:
    """"2026-W45" for a week (the ISO week of its local start), "2026-11-02" for a day."""
    day = start.astimezone(zone).date()
    if unit == "day":
        return day.isoformat()
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


class _Tally:
    """The numbers of one bucket, filled in one pass over the rows."""

    __slots__ = ("tickets", "escalations", "breached", "first_response", "resolution", "ack_times")

    def __init__(self) -> None:
        self.tickets = self.escalations = self.first_response = self.resolution = 0
        self.breached: set[int] = set()  # tickets that broke either target
        self.ack_times: list[float] = []

    def add(self, other: _Tally) -> _Tally:
        self.tickets += other.tickets
        self.escalations += other.escalations
        self.first_response += other.first_response
        self.resolution += other.resolution
        self.breached |= other.breached
        self.ack_times += other.ack_times
        return self

    def numbers(self) -> dict[str, Any]:
        times = durations(self.ack_times)
        return {"tickets": self.tickets, "escalations": self.escalations, "breaches": len(self.breached),
                "breach_share": share(len(self.breached), self.tickets),
                "first_response_breaches": self.first_response, "resolution_breaches": self.resolution,
                "acknowledged": times["count"], "ack_median_seconds": times["median_seconds"],
                "ack_p90_seconds": times["p90_seconds"]}


def trend(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    zone = zone_of(ruleset)
    length = scope.until - scope.since
    unit = "week" if length >= DAILY_BELOW else "day"
    current = boundaries(scope.since, scope.until, zone, unit)
    previous = [edge - length for edge in current]
    edges = previous[:-1] + current  # previous[-1] is the window's start: 2n buckets, the previous period first
    count = len(current) - 1
    stored = [Ticket.created_at.db_value(edge) for edge in edges]
    column = created_at_column(previous[0], scope.until)
    both = (column >= previous[0]) & (column < scope.until)
    before = (Ticket.created_at >= previous[0]) & (Ticket.created_at < scope.since)
    if not scope.include_drills:
        both &= (Ticket.drill == False)  # noqa: E712 -- peewee builds SQL from ==
        before &= (Ticket.drill == False)  # noqa: E712

    tallies = [_Tally() for _ in range(2 * count)]
    bucket_of: dict[int, int] = {}
    opened, escalated = [0] * len(tallies), [0] * len(tallies)
    find = bisect.bisect_right
    for ticket_id, created, was_escalated in rows(Ticket.select(Ticket.id, Ticket.created_at,
                                                                Ticket.tier.is_null(False)).where(both)):
        index = find(stored, created) - 1
        bucket_of[ticket_id] = index
        opened[index] += 1
        if was_escalated:
            escalated[index] += 1
    for tally, n, m in zip(tallies, opened, escalated):
        tally.tickets, tally.escalations = n, m

    # the longest wait of each ticket: one #ack stops all its escalations (as in time_to_acknowledge);
    # the window's own acknowledgements the report has read already
    waits: dict[int, float] = {}
    for ticket_id, _rule, _tier, _severity, wait, _step in [*acknowledged_escalations(before), *scope.acknowledged()]:
        waits[ticket_id] = max(wait, waits.get(ticket_id, wait))
    for ticket_id, wait in waits.items():
        tallies[bucket_of[ticket_id]].ack_times.append(wait)

    for breach in [*sla.breaches(ruleset, before, now), *scope.breaches(ruleset, now)]:
        tally = tallies[bucket_of[breach.ticket_id]]
        tally.breached.add(breach.ticket_id)
        if breach.target == "first_response":
            tally.first_response += 1
        else:
            tally.resolution += 1

    old, new = tallies[:count], tallies[count:]
    return {"trend": {
        "unit": unit, "zone": ruleset.timezone or "UTC",
        "period": {"since": iso(scope.since), "until": iso(scope.until),
                   **_sum(new).numbers()},
        "previous_period": {"since": iso(previous[0]), "until": iso(scope.since), **_sum(old).numbers()},
        "buckets": [{"label": label(current[i], zone, unit), "start": iso(current[i]), "end": iso(current[i + 1]),
                     "whole": current[i + 1] - current[i] == _whole(current[i], zone, unit),
                     **new[i].numbers(),
                     "previous": {"start": iso(previous[i]), "end": iso(previous[i + 1]), **old[i].numbers()}}
                    for i in range(count)],
    }}


def _sum(tallies: list[_Tally]) -> _Tally:
    total = _Tally()
    for tally in tallies:
        total.add(tally)
    return total


def _whole(start: datetime, zone: tzinfo, unit: str) -> timedelta:
    """The length of the whole day or week `start` falls in (23 or 25 hours across a DST change)."""
    day = start.astimezone(zone).date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    end = day + timedelta(days=7 if unit == "week" else 1)
    # aware times in one zone subtract as wall-clock times: in UTC they give the real length
    return (datetime.combine(end, time(0), zone).astimezone(timezone.utc)
            - datetime.combine(day, time(0), zone).astimezone(timezone.utc))
