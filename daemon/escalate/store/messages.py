"""Stored mail (`message`): the lookups ingest runs for every mail, in plain SQL because building
them with peewee's query builder costs more than running them (bench/ingest_bench.py)."""

from __future__ import annotations

from datetime import datetime

from escalate.store import marks
from escalate.store.models import Message, database

KEY_EXISTS = 'SELECT 1 FROM "message" WHERE "dedupe_key" = ?'
BY_MESSAGE_ID_OR_KEY = ('SELECT "id", "sha256", "dedupe_key", "message_id" FROM "message" '
                        'WHERE "message_id" = ? OR "dedupe_key" = ?')
RAW = 'SELECT "raw" FROM "message" WHERE "id" = ?'
TICKETS_BY_MESSAGE_ID = ('SELECT "message_id", "ticket_id" FROM "message" '
                         'WHERE "message_id" IN ({marks}) AND "ticket_id" IS NOT NULL')


def dedupe_key_exists(key: str) -> bool:
    """Whether a mail is stored under this dedupe key."""
    return database.execute_sql(KEY_EXISTS, [key]).fetchone() is not None


def by_message_id_or_key(message_id: str, key: str) -> list[tuple[int, str, str, str | None]]:
    """(id, sha256, dedupe_key, message_id) of the mails with this Message-ID, and of the mail
    stored under this key (one query for both)."""
    return database.execute_sql(BY_MESSAGE_ID_OR_KEY, [message_id, key]).fetchall()


def raw(message_id: int) -> bytes:
    """The stored bytes of mail `message_id` (a row that exists)."""
    (stored,) = database.execute_sql(RAW, [message_id]).fetchone()
    return bytes(stored)


def tickets_by_message_id(message_ids: list[str]) -> dict[str, int]:
    """{Message-ID: ticket id} of the stored mails among `message_ids` that are on a ticket."""
    sql = TICKETS_BY_MESSAGE_ID.format(marks=marks(len(message_ids)))
    return dict(database.execute_sql(sql, message_ids).fetchall())


# only the columns a notification shows, not the stored message's raw bytes
LAST_FROM_CUSTOMER = ('SELECT "new_text", "body_text", "from_addr", "received_at" FROM "message" '
                      'WHERE "ticket_id" = ? AND "kind" = \'customer\' AND "received_at" <= ? '
                      'ORDER BY "received_at" DESC, "id" DESC LIMIT 1')


def last_from_customer(ticket_id: int, as_of: datetime) -> tuple[str, str, str | None, datetime] | None:
    """(new_text, body_text, from_addr, received_at) of the ticket's latest customer message received by `as_of`."""
    row = database.execute_sql(LAST_FROM_CUSTOMER, [ticket_id, Message.received_at.db_value(as_of)]).fetchone()
    if row is None:
        return None
    new_text, body_text, from_addr, received_at = row
    return new_text, body_text, from_addr, Message.received_at.python_value(received_at)


# an attachment's contents are stored once, whichever mail brought them
STORED_CONTENTS = ('SELECT "stored_path", "stored_offset" FROM "attachment" WHERE "sha256" = ? '
                   'AND "stored_path" IS NOT NULL LIMIT 1')


def stored_contents(sha256: str) -> tuple[str, int | None] | None:
    """(file, offset in it or None for a file of its own) where contents with this sha256 are kept, or None."""
    row = database.execute_sql(STORED_CONTENTS, [sha256]).fetchone()
    return (row[0], row[1]) if row else None
