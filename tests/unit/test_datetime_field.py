"""Stored times read back as aware UTC datetimes, whatever text form SQLite holds them in."""

from datetime import datetime, timedelta, timezone

import peewee
import pytest

from escalate.models import Ticket

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


def test_a_written_time_reads_back_equal():
    for moment in (datetime(2026, 3, 29, 1, 30, 15, 250000, tzinfo=UTC),
                   datetime(2026, 10, 25, 2, 30, tzinfo=timezone(timedelta(hours=1)))):
        stored = Ticket.created_at.db_value(moment)
        text = stored.isoformat(" ")  # how sqlite3 stores a naive datetime
        assert Ticket.created_at.python_value(text) == moment
