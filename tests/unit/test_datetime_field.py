"""Stored times read back as aware UTC datetimes, whatever text form SQLite holds them in."""

import sqlite3
from datetime import datetime, timedelta, timezone

import peewee
import pytest
from escalate.store.models import Ticket, database

UTC = timezone.utc


@pytest.mark.parametrize("stored, expected", [
    ("2026-11-04 09:44:00", datetime(2026, 11, 4, 9, 44, tzinfo=UTC)),
    ("2026-11-04 09:44:00.123456", datetime(2026, 11, 4, 9, 44, 0, 123456, tzinfo=UTC)),
    ("2026-11-04", datetime(2026, 11, 4, tzinfo=UTC)),  # a date alone: midnight UTC
    ("2026-11-04 09:44:00+02:00", datetime(2026, 11, 4, 9, 44, tzinfo=timezone(timedelta(hours=2)))),
    (datetime(2026, 11, 4, 9, 44), datetime(2026, 11, 4, 9, 44, tzinfo=UTC)),  # PostgreSQL's driver gives datetimes
    (None, None),
])
def test_every_stored_form_reads_back_as_peewee_reads_it_in_utc(stored, expected):
    value = Ticket.created_at.python_value(stored)
    assert value == expected and (value is None or value.tzinfo is not None)
    plain = peewee.DateTimeField().python_value(stored)  # what peewee itself makes of the text
    if isinstance(plain, datetime):
        assert value == (plain if plain.tzinfo else plain.replace(tzinfo=UTC))


# the database the models are bound to decides the form (nothing is opened: the field only asks its kind)
DATABASES = {"postgresql": lambda: peewee.PostgresqlDatabase("escalate"), "sqlite": lambda: peewee.SqliteDatabase(":memory:")}


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_a_written_time_reads_back_equal(kind, monkeypatch):
    monkeypatch.setattr(database, "obj", DATABASES[kind]())
    as_text = kind == "sqlite"
    for moment in (datetime(2026, 3, 29, 1, 30, 15, 250000, tzinfo=UTC),
                   datetime(2026, 10, 25, 2, 30, tzinfo=timezone(timedelta(hours=1))),
                   datetime(2026, 11, 4, 9, 0, tzinfo=UTC)):
        stored = Ticket.created_at.db_value(moment)
        naive_utc = moment.astimezone(UTC).replace(tzinfo=None)
        if as_text:  # the very text sqlite3's datetime adapter would have stored
            assert stored == naive_utc.isoformat(" ") == sqlite3.adapters[(datetime, sqlite3.PrepareProtocol)](naive_utc)
        else:
            assert stored == naive_utc and stored.tzinfo is None
        text = stored if as_text else stored.isoformat(" ")
        assert Ticket.created_at.python_value(text) == moment


def test_the_form_follows_the_database_bound_now(monkeypatch):
    """Tests (and `escalate` commands) may open SQLite, then PostgreSQL, in one process; the same
    moment written to each, one after the other, takes each one's form."""
    moment = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
    monkeypatch.setattr(database, "obj", DATABASES["sqlite"]())
    assert Ticket.created_at.db_value(moment) == "2026-11-04 09:00:00"
    monkeypatch.setattr(database, "obj", DATABASES["postgresql"]())
    assert Ticket.created_at.db_value(moment) == datetime(2026, 11, 4, 9, 0)
