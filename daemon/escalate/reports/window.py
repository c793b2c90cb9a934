"""What every part of the report shares: the window it covers (tickets opened in [since, until),
with the window's SLA breaches found once), reading its rows, and the arithmetic of durations
and shares. report.py builds the report's sections from these, trend.py the trend."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

import peewee

from escalate.rules.model import Ruleset
from escalate.store.models import Escalation, Ticket, database
from escalate.tickets import sla

WIDE_WINDOW = 0.2  # above this share of all tickets, the window is read by a table scan


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None for no values)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


def durations(values: Iterable[float]) -> dict[str, Any]:
    ordered = sorted(max(0.0, v) for v in values)
    return {"count": len(ordered), "median_seconds": _round(percentile(ordered, 0.5)),
            "p90_seconds": _round(percentile(ordered, 0.9))}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class Scope:
    """What the report covers — tickets opened in [since, until), drills or not — and what several
    stages share, read once: the window's SLA breaches (the costliest query of the report) and its
    acknowledged escalations."""

    since: datetime
    until: datetime
    include_drills: bool
    window: Any  # the SQL condition for a ticket in the window
    _breaches: list[sla.Breach] | None = field(default=None, repr=False)
    _acknowledged: list[tuple] | None = field(default=None, repr=False)

    def breaches(self, ruleset: Ruleset, now: datetime) -> list[sla.Breach]:
        if self._breaches is None:
            self._breaches = sla.breaches(ruleset, self.window, now)
        return self._breaches

    def acknowledged(self) -> list[tuple]:
        """(ticket id, rule, tier, severity, seconds from start to #ack, step) of each acknowledged
        escalation of the window's tickets."""
        if self._acknowledged is None:
            self._acknowledged = acknowledged_escalations(self.window)
        return self._acknowledged


def acknowledged_escalations(condition: Any) -> list[tuple]:
    """`Scope.acknowledged`'s rows for the tickets `condition` selects."""
    seconds = sla.epoch(Escalation.acknowledged_at) - sla.epoch(Escalation.started_at)
    return rows(Escalation.select(Escalation.ticket, Escalation.rule, Escalation.tier, Ticket.severity, seconds,
                                  Escalation.step)
                .join(Ticket, on=(Escalation.ticket == Ticket.id))
                .where(condition & (Escalation.state == "acknowledged") & Escalation.acknowledged_at.is_null(False)))


def created_at_column(since: datetime, until: datetime):
    """Ticket.created_at for the window condition. When the window holds most of the tickets,
    SQLite is much faster scanning the table than following the created_at index row by row
    (8x on 100,000 tickets), but without range statistics it always picks the index; a unary +
    tells it not to. A covering count on the index decides, in milliseconds."""
    if not isinstance(database.obj, peewee.SqliteDatabase):
        return Ticket.created_at
    inside = Ticket.select().where((Ticket.created_at >= since) & (Ticket.created_at < until)).count()
    everything = Ticket.select().count()
    if everything and inside > everything * WIDE_WINDOW:
        return peewee.NodeList((peewee.SQL("+"), Ticket.created_at), glue="")
    return Ticket.created_at


def rows(query) -> list[tuple]:
    """The query's rows as the database returns them: computed seconds stay floats, with no
    per-value conversion by peewee (which costs more than the query on a large history)."""
    return database.execute(query).fetchall()


def share(part: int, whole: int) -> float | None:
    """`part` as a fraction of `whole`, to three places (None when there is no whole)."""
    return round(part / whole, 3) if whole else None
