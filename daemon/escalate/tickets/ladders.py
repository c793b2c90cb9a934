"""A ticket's escalation ladders as stored (models.Escalation, one row per ladder) and as the
rules read them (rules.ladder.Ladder): reading the current one, writing what a decision changed.

The ticket's current ladder is its active row, else its latest; the rows before it are history.
"""

from __future__ import annotations

from datetime import datetime

from escalate.clock import iso, parse_time
from escalate.rules.ladder import ACTIVE, EXHAUSTED, NONE, Ladder
from escalate.rules.model import Ruleset
from escalate.store import rows
from escalate.store.batch import Batch, writing
from escalate.store.models import Escalation, Ticket

# the Ladder fields stored as Escalation columns of the same name
_COLUMNS = ("state", "tier", "step", "rule", "started_at", "tier_since", "last_step_due_at", "next_step_at",
            "forced", "ack_tier", "ended_at", "severity")


def current_row(escalations: list[Escalation]) -> Escalation | None:
    """The ticket's current ladder among all its rows: the active one, else the latest."""
    if not escalations:
        return None
    active = [row for row in escalations if row.state == ACTIVE]
    return max(active or escalations, key=lambda row: (row.id is not None, row.id or 0))


def fired_of(ticket: Ticket, escalations: list[Escalation]) -> dict[str, datetime]:
    """The rules that fired on the ticket and when each began to hold. Tickets from before ladders
    kept that only in their per-rule escalation rows: each row's rule fired at its start."""
    if ticket.rules_fired is not None:
        return {name: parse_time(at) for name, at in ticket.rules_fired.items()}
    return {row.rule: row.started_at for row in escalations}


def ladder_of(ticket: Ticket, escalations: list[Escalation]) -> Ladder:
    fired = fired_of(ticket, escalations)
    row = current_row(escalations)
    if row is None:
        return Ladder(fired=fired)
    return Ladder(state=row.state, tier=row.tier, step=row.step, rule=row.rule,
                  reasons=tuple(row.reasons or (row.rule,)), started_at=row.started_at,
                  tier_since=row.tier_since or row.last_step_due_at, last_step_due_at=row.last_step_due_at,
                  next_step_at=row.next_step_at, forced=bool(row.forced), ack_tier=row.ack_tier,
                  ended_at=row.ended_at, severity=row.severity, fired=fired)


def values_of(ticket: Ticket, ladder: Ladder) -> dict:
    """An Escalation row's values for `ladder` (a new row)."""
    values = {name: getattr(ladder, name) for name in _COLUMNS}
    values.update(ticket=ticket, reasons=list(ladder.reasons), last_step_due_at=ladder.last_step_due_at or ladder.started_at)
    return values


def changed_columns(row: Escalation, ladder: Ladder) -> list[str]:
    """Set on `row` what `ladder` changed; returns the names of the columns to write."""
    changed = [name for name in _COLUMNS if getattr(ladder, name) != getattr(row, name)
               and not (name == "last_step_due_at" and ladder.last_step_due_at is None)]
    for name in changed:
        setattr(row, name, getattr(ladder, name))
    if list(ladder.reasons) != list(row.reasons or ()):
        row.reasons = list(ladder.reasons)
        changed.append("reasons")
    return changed


def start(ticket: Ticket, ladder: Ladder, pending: list[Escalation] | None = None) -> Escalation:
    """A ticket's new ladder: its row written now, or, in a tick batch (`pending`: the batch's new
    rows), kept without an id and written with the batch's mail by `insert_pending` (a later step
    of the same batch changes such a row on the instance)."""
    values = values_of(ticket, ladder)
    if pending is None:
        return Escalation(id=rows.insert(Escalation, values), **values)
    escalation = rows.unsaved(Escalation, values)
    pending.append(escalation)
    return escalation


_INSERTED_COLUMNS = ("ticket", "rule", "tier", "step", "started_at", "last_step_due_at", "state", "tier_since",
                     "next_step_at", "reasons", "forced", "ack_tier", "ended_at", "severity")
INSERT_ROWS = 100  # rows per INSERT: well inside SQLite's limit of 32,766 parameters


def insert_pending(pending: list[Escalation]) -> None:
    """A tick batch's new ladders as they are now (a later step of the batch may have moved one
    on), each given its id, which their outbox rows then carry. No conflict is expected: the batch
    read its tickets' escalations under the tickets' claim; one would fail the batch."""
    for start_at in range(0, len(pending), INSERT_ROWS):
        chunk = pending[start_at:start_at + INSERT_ROWS]
        ids = dict(rows.insert_returning(Escalation, [{name: e.__data__[name] for name in _INSERTED_COLUMNS}
                                                      for e in chunk], ("ticket", "rule")))
        for escalation in chunk:
            escalation.id = ids[(escalation.ticket_id, escalation.rule)]


def write(row: Escalation, ladder: Ladder, batch: Batch | None = None) -> None:
    """Write what changed on an existing row (a row new in this tick batch is written as it is
    when the batch ends: insert_pending); in a tick `batch` opens the ticket's savepoint first."""
    changed = changed_columns(row, ladder)
    if changed and row.id is not None:
        writing(batch)
        rows.update(row, *changed)


def fired_json(fired: dict[str, datetime]) -> dict[str, str]:
    return {name: iso(at) for name, at in fired.items()}


def summary(ladder: Ladder, ruleset: Ruleset | None = None) -> dict | None:
    """The ticket's ladder as `tickets show` and `rules explain` show it (None: never escalated)."""
    if ladder.state == NONE:
        return None
    at_top = ruleset is not None and ladder.tier == ruleset.max_tier_level
    return {"state": ladder.state, "exhausted": ladder.state == EXHAUSTED, "tier": ladder.tier,
            "reminders": ladder.step, "top_reminders": ladder.step if at_top else 0,
            "rule": ladder.rule, "reasons": list(ladder.reasons), "forced": ladder.forced,
            "started_at": iso(ladder.started_at), "next_step_at": iso(ladder.next_step_at),
            "acknowledged_tier": ladder.ack_tier, "ended_at": iso(ladder.ended_at)}
