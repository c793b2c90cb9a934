"""rows.py, the ingest hot path's own INSERT/UPDATE/SELECT: the rows it writes read back through
peewee exactly as `Model.create` would have left them, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from escalate.store import db, rows
from escalate.store.models import Attachment, Event, Message, Outbox, Ticket

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


def test_created_rows_read_back_like_peewee_created_ones(database_url):
    db.connect(database_url)
    with db.write_transaction():
        ours = rows.create(Ticket, subject="Printer", normalised_subject="printer", requester="a@example.org",
                           severity="normal", created_at=NOW, updated_at=NOW, next_due_at=NOW)
        theirs = Ticket.create(subject="Printer", normalised_subject="printer", requester="a@example.org",
                               severity="normal", created_at=NOW, updated_at=NOW, next_due_at=NOW)
    assert ours.id is not None and ours.id != theirs.id
    stored, expected = Ticket.get_by_id(ours.id).__data__, Ticket.get_by_id(theirs.id).__data__
    assert {**stored, "id": None} == {**expected, "id": None}
    assert stored["status"] == "new" and stored["waiting_periods"] == [] and stored["created_at"] == NOW


def test_update_writes_only_the_named_columns(database_url):
    db.connect(database_url)
    with db.write_transaction():
        ticket = rows.create(Ticket, subject="Export", normalised_subject="export", requester="b@example.org",
                             severity="normal", created_at=NOW, updated_at=NOW)
        Ticket.update(assignee="carol").where(Ticket.id == ticket.id).execute()  # another writer, meanwhile
        ticket.status, ticket.waiting_periods = "open", [["2026-11-02T09:00:00+00:00", "2026-11-02T09:30:00+00:00"]]
        ticket.updated_at = NOW + timedelta(minutes=5)
        rows.update(ticket, "status", "waiting_periods", "updated_at")
    stored = Ticket.get_by_id(ticket.id)
    assert (stored.status, stored.waiting_periods, stored.updated_at, stored.assignee) == \
           ("open", ticket.waiting_periods, NOW + timedelta(minutes=5), "carol")


def test_message_attachments_and_events_with_foreign_keys(database_url):
    db.connect(database_url)
    with db.write_transaction():
        ticket = rows.create(Ticket, subject="Logs", normalised_subject="logs", requester="c@example.org",
                             severity="urgent", created_at=NOW, updated_at=NOW)
        message = rows.create(Message, ticket=ticket, dedupe_key="m1@example.org", message_id="m1@example.org",
                              sha256="ab" * 32, kind="customer", received_at=NOW, raw=b"\x00raw\xff",
                              references=["r@example.org"])
        rows.insert_many(Attachment, [{"message": message.id, "filename": "a.log", "content_type": "text/plain",
                                       "size": 3, "stored_path": None},
                                      {"message": message.id, "filename": None, "content_type": "image/png",
                                       "size": 9, "stored_path": "ab/ab.bin"}])
        event = rows.create(Event, ticket=ticket, at=NOW, actor="c@example.org", action="message",
                            detail={"kind": "customer"})
    stored = Message.get_by_id(message.id)
    assert (stored.ticket_id, bytes(stored.raw), stored.references, stored.in_reply_to, stored.collision) == \
           (ticket.id, b"\x00raw\xff", ["r@example.org"], [], False)
    assert [(a.filename, a.size, a.stored_path) for a in stored.attachment_rows.order_by(Attachment.id)] == \
           [("a.log", 3, None), (None, 9, "ab/ab.bin")]
    assert Event.get_by_id(event.id).detail == {"kind": "customer"}


def test_get_by_id_reads_every_field_and_raises_for_a_missing_row(database_url):
    db.connect(database_url)
    with db.write_transaction():
        sent = Outbox.create(kind="escalation", message_id="n1@escalate", mail_from="esc@example.com",
                             recipients=["t1@example.com"], subject="T-1", raw=b"notification", next_attempt_at=NOW,
                             created_at=NOW)
    read = rows.get_by_id(Outbox, sent.id)  # Outbox has a field called `raw`, like peewee's Model.raw
    assert read.__data__ == Outbox.get_by_id(sent.id).__data__ and not read.is_dirty()
    with pytest.raises(Ticket.DoesNotExist):
        rows.get_by_id(Ticket, 999_999)


def test_an_unsaved_instance_reads_like_peewee_s_own(database_url):
    db.connect(database_url)
    with db.write_transaction():
        ticket = rows.create(Ticket, subject="VPN", normalised_subject="vpn", requester="d@example.org",
                             severity="urgent", created_at=NOW, updated_at=NOW)
    values = {"ticket": ticket, "kind": "escalation", "rule": "urgent-first-response", "step": 0, "due_at": NOW,
              "tier": 1, "message_id": "esc.1@example.org", "mail_from": "support@example.org",
              "recipients": ["tier1@example.org"], "subject": "[T-1] VPN", "raw": b"", "context": {"a": [1]},
              "status": "queued", "next_attempt_at": NOW, "created_at": NOW}
    ours, theirs = rows.unsaved(Outbox, values), Outbox(**values)
    for name in values:
        assert getattr(ours, name) == getattr(theirs, name), name
    assert all(getattr(ours, field.name) is None for field in Outbox._meta.sorted_fields if field.name not in values)
    assert ours.ticket is ticket and ours.ticket_id == ticket.id and ours.id is None


def test_values_of_another_type_than_the_column_s_are_still_converted_both_ways(database_url):
    """rows.py skips a field's converter only for a value of the exact type it leaves alone (str
    for text, int for integers): anything else converts as peewee would."""
    db.connect(database_url)
    with db.write_transaction():
        ticket = rows.create(Ticket, subject=12345, normalised_subject="n", requester="e@example.org",
                             severity="normal", created_at=NOW, updated_at=NOW, drill=True, message_count=True)
        rows.insert_many(Event, [{"ticket": ticket, "at": NOW, "actor": 7, "action": "note", "detail": {"n": 1},
                                  "rule": None}])
    read = rows.get_by_id(Ticket, ticket.id)
    assert read.__data__ == Ticket.get_by_id(ticket.id).__data__
    assert (read.subject, read.drill, read.message_count) == ("12345", True, 1)
    assert type(read.drill) is bool and type(read.message_count) is int
    event = rows.select_models(Event, 'WHERE "ticket_id" = ?', [ticket.id])[0]
    assert (event.ticket_id, event.actor, event.detail) == (ticket.id, "7", {"n": 1})
