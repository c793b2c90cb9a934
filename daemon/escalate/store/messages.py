"""Stored mail (`message`): the lookups ingest runs for every mail, in plain SQL because building
them with peewee's query builder costs more than running them (bench/ingest_bench.py)."""

from __future__ import annotations

from ..models import database
from . import marks

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
