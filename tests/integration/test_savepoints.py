"""batch.Batch: a unit of work inside a transaction (one ticket of a tick, one mail of an ingest
batch) is undone alone when it raises, with the events and mail it added to the batch; its
savepoint is opened only when the unit writes (a tick's tickets mostly write nothing of their own)
— on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from escalate.outbound import notify
from escalate.store import db, rows
from escalate.store.batch import Batch
from escalate.store.models import Event, Outbox, Ticket
from escalate.tickets import audit

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


class Boom(Exception):
    pass


def _ticket(subject: str, batch: Batch | None = None) -> Ticket:
    if batch is not None:
        batch.writing()
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
        batch = Batch()
        _ticket("before")
        with pytest.raises(Boom), batch.unit():
            _ticket("undone", batch)
            Ticket.update(subject="changed").where(Ticket.subject == "before").execute()
            raise Boom
        with batch.unit(eager=True):
            _ticket("kept")
        _ticket("after")
    assert _subjects() == ["before", "kept", "after"]


def test_nested_units_opened_late_still_undo_only_their_own_part(database_url):
    db.connect(database_url)
    with db.write_transaction():
        batch = Batch()
        with batch.unit():  # the outer unit writes nothing before the inner one
            with pytest.raises(Boom), batch.unit():
                _ticket("inner, undone", batch)
                raise Boom
            _ticket("outer, kept", batch)
        with pytest.raises(Boom), batch.unit():
            _ticket("outer, undone", batch)
            with batch.unit():
                batch.writing()
                rows.insert_many(Event, [{"ticket": Ticket.select().first().id, "at": NOW, "actor": "a",
                                          "action": "note", "detail": {}, "rule": None}])
            raise Boom  # undoes the inner unit's committed-to-outer events too
    assert _subjects() == ["outer, kept"]
    assert Event.select().count() == 0


def test_a_unit_that_writes_nothing_costs_no_statement(database_url, monkeypatch):
    db.connect(database_url)
    seen = _savepoint_statements(monkeypatch)
    with db.write_transaction():
        batch = Batch()
        for _ in range(3):
            with batch.unit():
                Ticket.select().count()  # reads need no savepoint
        with pytest.raises(Boom), batch.unit():
            raise Boom  # nothing written: nothing to roll back
        assert seen == []
        with batch.unit():
            _ticket("written", batch)
    assert seen == ["SAVEPOINT", "RELEASE"]
    assert _subjects() == ["written"]


def test_a_batch_insert_in_a_unit_is_undone_with_it(database_url):
    """rows.execute_many goes to the driver's executemany: the unit's savepoint, opened by
    `writing()`, still covers it."""
    db.connect(database_url)
    with db.write_transaction():
        ticket = _ticket("t")
        batch = Batch()
        with pytest.raises(Boom), batch.unit():
            batch.writing()
            rows.insert_many(Event, [{"ticket": ticket.id, "at": NOW, "actor": "a", "action": "note",
                                      "detail": {"n": n}, "rule": None} for n in range(3)])
            raise Boom
    assert Event.select().count() == 0


def test_what_a_failing_unit_kept_for_the_batch_goes_with_it(database_url):
    """The tick and ingest keep their audit events (and the tick its mail) for the batch's end; a
    unit that fails must take what it added there with it, whether or not it wrote a row."""
    db.connect(database_url)
    with db.write_transaction():
        ticket = _ticket("t")
        batch = Batch(notify.DeferredMail(b"s" * 32))
        audit.record(ticket, NOW, "a", "kept-before", batch=batch)
        with pytest.raises(Boom), batch.unit():
            audit.record(ticket, NOW, "a", "undone, no statement", batch=batch)
            batch.mail.add(_outbox_values(ticket, "undone@example.org"), ["x@example.org"], {})
            raise Boom
        with pytest.raises(Boom), batch.unit():
            audit.record(ticket, NOW, "a", "undone, with a statement", batch=batch)
            _ticket("undone", batch)
            raise Boom
        with batch.unit():
            audit.record(ticket, NOW, "a", "kept-after", batch=batch)
            batch.mail.add(_outbox_values(ticket, "kept@example.org"), ["x@example.org"], {})
        assert batch.flush() == 0
    assert [e.action for e in Event.select().order_by(Event.id)] == ["kept-before", "kept-after"]
    assert [o.message_id for o in Outbox.select()] == ["kept@example.org"]
    assert _subjects() == ["t"]


def _outbox_values(ticket: Ticket, message_id: str) -> dict:
    return {"ticket": ticket, "escalation": None, "kind": "confirmation", "rule": None, "step": None, "due_at": None,
            "tier": None, "message_id": message_id, "mail_from": "support@example.com", "recipients": ["x@example.org"],
            "subject": "s", "raw": b"", "template": "confirmation", "context": {}, "headers": {}, "status": "queued",
            "last_error": None, "next_attempt_at": NOW, "created_at": NOW, "attempts": 0}
