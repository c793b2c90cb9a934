"""The unit of work of a write transaction that handles many tickets or messages at once (a tick
batch, an ingest batch): what they decide that is written together, and a savepoint per ticket
or message inside it.

    with write_transaction():
        batch = Batch(mail=notify.DeferredMail(secret))   # ingest: Batch(), its mail written at once
        for ticket in due:
            with batch.unit():                            # a failing ticket is undone alone
                ...  audit.record(..., batch=batch); notify.queue_…(..., batch=batch)
        batch.flush()                                     # the mail, then the events, before commit

It is handed down explicitly to whatever records an event or queues a mail for the batch. A
function given no batch writes at once (a CLI command, a single reply).

Audit events are kept and written in one executemany by `flush` instead of one INSERT each; the
mail (notify.DeferredMail) likewise. A unit that fails drops what it added to either, and the log
lines it held back (logs.held) for after the commit.

A unit's savepoint is opened lazily: most of a tick's tickets write nothing of their own — their
escalations, mail and events wait for `flush` — so a savepoint and its release per due ticket would
be a twentieth of an escalating tick spent on nothing. Code that writes a row directly inside a
unit calls `batch.writing()` first (ladders.write, the severity a rule sets, …); an ingest unit
always writes its message, so it opens at once (`unit(eager=True)`). peewee's `atomic()` would
name each savepoint with a fresh uuid4 and build its statements anew; one fixed name is enough:
SQLite and PostgreSQL both take a repeated name to mean the newest savepoint of that name, so
nested units pair up.
"""

from __future__ import annotations

from typing import Any

from escalate.store import db, rows
from escalate.store.models import Event, database

_SAVEPOINT = 'SAVEPOINT "escalate_unit"'


class Batch:
    def __init__(self, mail: Any = None, log: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.mail = mail  # notify.DeferredMail, or None: mail is written as it is queued
        self.log = log  # logs.HeldEvents: the batch's log lines, written once it committed; or None
        self.units: list[Unit] = []  # entered, innermost last

    def audit(self, event: dict[str, Any]) -> None:
        self.events.append(event)

    def unit(self, *, eager: bool = False) -> Unit:
        """A savepoint for one ticket or message: what it wrote, and what it added to this batch,
        is undone alone if the block raises (the exception goes on)."""
        return Unit(self, eager)

    def writing(self) -> None:
        """Before a statement that writes inside a unit: open, outermost first, the savepoints
        entered but not opened yet (the innermost is opened last, so it alone says whether any is
        waiting)."""
        units = self.units
        if not units or units[-1].opened:
            return
        for entered in units:
            if not entered.opened:
                entered.opened = True
                database.obj.execute_sql(_SAVEPOINT)

    def flush(self) -> int:
        """Write what the batch kept, before its transaction commits: the mail first (its
        suppressions add events), then the events. Returns how many mails the outbox had already
        (its unique key keeps the first) and were not written again."""
        duplicates = self.mail.flush(self) if self.mail is not None else 0
        pending, self.events = self.events, []
        rows.insert_many(Event, pending)
        return duplicates


class Unit:
    """One ticket's or message's part of a batch (Batch.unit). A class, not a generator: a tick
    enters one per due ticket."""

    __slots__ = ("batch", "opened", "eager", "marks")

    def __init__(self, batch: Batch, eager: bool) -> None:
        self.batch, self.eager = batch, eager

    def __enter__(self) -> Unit:
        batch = self.batch
        self.opened = False
        self.marks = (len(batch.events), batch.mail.mark() if batch.mail is not None else None,
                      batch.log.mark() if batch.log is not None else None)
        batch.units.append(self)
        if self.eager:
            batch.writing()
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        batch = self.batch
        batch.units.pop()
        if kind is not None:
            events, mail, log_lines = self.marks
            del batch.events[events:]
            if batch.mail is not None:
                batch.mail.rollback(mail)
            if batch.log is not None:  # no line stands for work that was undone
                batch.log.rollback(log_lines)
        if self.opened:
            if kind is not None and db.transaction_gone():
                return False  # SQLite undid the whole transaction (a full disk): the error goes on as it is
            if kind is not None:
                database.obj.execute_sql('ROLLBACK TO SAVEPOINT "escalate_unit"')
            database.obj.execute_sql('RELEASE SAVEPOINT "escalate_unit"')
        return False  # an exception goes on to the caller


def writing(batch: Batch | None) -> None:
    """`batch.writing()` when there is a batch (a function that writes, called in a batch or not)."""
    if batch is not None:
        batch.writing()


def held_lines(batch: Batch | None) -> Any:
    """The log lines `batch` holds for after its commit (logs.event's `held=`), or None: log at once."""
    return batch.log if batch is not None else None
