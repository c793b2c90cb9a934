"""db.savepoint: a unit of work inside a transaction is undone alone when it raises — opened only
when the unit runs a statement (a tick's tickets mostly write nothing of their own) — on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from escalate import audit, db, rows
from escalate.models import Event, Ticket

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


class Boom(Exception):
    pass


def _ticket(subject: str) -> Ticket:
    return rows.create(Ticket, subject=subject, normalised_subject=subject.lower(), requester="a@example.org",
                       severity="normal", created_at=NOW, updated_at=NOW)


def _subjects() -> list[str]:
    return [t.subject for t in Ticket.select(Ticket.subject).order_by(Ticket.id)]


def _savepoint_statements(monkeypatch) -> list[str]:
    seen: list[str] = []
    execute = db.peewee.Database.execute_sql

    def record(self, sql, params=None, *args, **kwargs):
        if "SAVEPOINT" in sql:
            seen.append(sql.split()[0])
        return execute(self, sql, params, *args, **kwargs)
    monkeypatch.setattr(db.peewee.Database, "execute_sql", record)
    return seen


def test_a_failing_unit_is_undone_alone_and_the_rest_commits(database_url):
    db.connect(database_url)
    with db.write_transaction():
        _ticket("before")
        with pytest.raises(Boom), db.savepoint():
            _ticket("undone")
            Ticket.update(subject="changed").where(Ticket.subject == "before").execute()
            raise Boom
        with db.savepoint():
            _ticket("kept")
        _ticket("after")
    assert _subjects() == ["before", "kept", "after"]


def test_nested_units_opened_late_still_undo_only_their_own_part(database_url):
    db.connect(database_url)
    with db.write_transaction():
        with db.savepoint():  # the outer unit runs no statement before the inner one
            with pytest.raises(Boom), db.savepoint():
                _ticket("inner, undone")
                raise Boom
            _ticket("outer, kept")
        with pytest.raises(Boom), db.savepoint():
            _ticket("outer, undone")
            with db.savepoint():
                rows.insert_many(Event, [{"ticket": Ticket.select().first().id, "at": NOW, "actor": "a",
                                          "action": "note", "detail": {}, "rule": None}])
            raise Boom  # undoes the inner unit's committed-to-outer events too
    assert _subjects() == ["outer, kept"]
    assert Event.select().count() == 0


def test_a_unit_that_runs_no_statement_costs_none(database_url, monkeypatch):
    db.connect(database_url)
    seen = _savepoint_statements(monkeypatch)
    with db.write_transaction():
        for _ in range(3):
            with db.savepoint():
                pass
        with pytest.raises(Boom), db.savepoint():
            raise Boom  # nothing written: nothing to roll back
        assert seen == []
        with db.savepoint():
            _ticket("written")
    assert seen == ["SAVEPOINT", "RELEASE"]
    assert _subjects() == ["written"]


def test_a_batch_insert_opens_the_pending_unit_first(database_url):
    """rows.execute_many goes to the driver's executemany, past execute_sql: it must open the
    savepoint too, or a failing unit's batch insert would survive its rollback."""
    db.connect(database_url)
    with db.write_transaction():
        ticket = _ticket("t")
        with pytest.raises(Boom), db.savepoint():
            rows.insert_many(Event, [{"ticket": ticket.id, "at": NOW, "actor": "a", "action": "note",
                                      "detail": {"n": n}, "rule": None} for n in range(3)])
            raise Boom
    assert Event.select().count() == 0


def test_what_a_failing_unit_added_to_deferred_batches_goes_with_it(database_url):
    """The tick and ingest defer their audit events (and the tick its mail) to the end of the
    batch; a unit that fails must take what it added there with it, whether or not it ran a statement."""
    db.connect(database_url)
    with db.write_transaction():
        ticket = _ticket("t")
        with audit.deferred() as events:
            audit.record(ticket, NOW, "a", "kept-before")
            with pytest.raises(Boom), db.savepoint(events, None):
                audit.record(ticket, NOW, "a", "undone, no statement")
                raise Boom
            with pytest.raises(Boom), db.savepoint(events):
                audit.record(ticket, NOW, "a", "undone, with a statement")
                _ticket("undone")
                raise Boom
            with db.savepoint(events):
                audit.record(ticket, NOW, "a", "kept-after")
            events.flush()
    assert [e.action for e in Event.select().order_by(Event.id)] == ["kept-before", "kept-after"]
    assert _subjects() == ["t"]
