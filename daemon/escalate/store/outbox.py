"""Notifications (`outbox`) and their deliveries (`delivery`): the lookups ingest runs for every
mail, the claims several instances make at once on PostgreSQL, and the two statements of every
flush of send outcomes, each written out once (peewee would build their SQL again for every
batch, which costs more than running them)."""

from __future__ import annotations

from datetime import datetime

from escalate.store import marks
from escalate.store.models import Delivery, Outbox, database

MESSAGE_ID_EXISTS = 'SELECT 1 FROM "outbox" WHERE "message_id" = ?'
IDS_BY_MESSAGE_ID = 'SELECT "message_id", "id" FROM "outbox" WHERE "message_id" IN ({marks})'
TICKETED_IDS_BY_MESSAGE_ID = ('SELECT "message_id", "id" FROM "outbox" '
                              'WHERE "message_id" IN ({marks}) AND "ticket_id" IS NOT NULL')

# The claim on PostgreSQL (Procrastinate's fetch_job pattern): pick due rows nobody holds,
# skipping rows another instance is claiming this instant, and stamp them ours in the same
# statement. The lease runs on the database's clock, not the simulated `--now`: it is about
# whether the claiming process is alive. Our own leases come back too (a run that ended early,
# jobs re-claimed as their lease ages); the caller skips the ones it has in flight. Mail and chat
# posts are claimed apart (different senders), told by the recipient: chat ones are "chat:…".
_LEASE = ('UPDATE "delivery" SET "lease_owner" = ?, '
          '"lease_until" = (now() AT TIME ZONE \'UTC\') + make_interval(secs => ?) '
          'WHERE "id" IN (SELECT "id" FROM "delivery" WHERE "status" = \'queued\' AND "next_attempt_at" <= ? '
          'AND "recipient" {chat} \'chat:%\' '
          'AND ("lease_until" IS NULL OR "lease_until" < (now() AT TIME ZONE \'UTC\') OR "lease_owner" = ?) '
          'ORDER BY "next_attempt_at", "id" LIMIT ? FOR UPDATE SKIP LOCKED) '
          'RETURNING "id"')
LEASE_MAIL = _LEASE.format(chat="NOT LIKE")
LEASE_CHAT = _LEASE.format(chat="LIKE")

# PostgreSQL: lock the outbox rows a flush settles, in id order, before reading their deliveries
LOCK_ROWS = 'SELECT "id" FROM "outbox" WHERE "id" IN ({marks}) ORDER BY "id" FOR UPDATE'
MARK_SENT = ('UPDATE "delivery" SET "status" = \'sent\', "sent_at" = ?, "attempts" = "attempts" + 1, '
             '"last_error" = NULL, "lease_owner" = NULL, "lease_until" = NULL WHERE "id" IN ({marks})')
# a row is sent once every recipient has it; its attempts are its busiest recipient's
SETTLE_SENT = ('UPDATE "outbox" SET "status" = \'sent\', "sent_at" = ?, "last_error" = NULL, '
               '"attempts" = (SELECT MAX("d"."attempts") FROM "delivery" AS "d" WHERE "d"."outbox_id" = "outbox"."id") '
               'WHERE "id" IN ({marks}) AND "status" = \'queued\' AND NOT EXISTS '
               '(SELECT 1 FROM "delivery" AS "d" WHERE "d"."outbox_id" = "outbox"."id" AND "d"."status" != \'sent\')')


def message_id_exists(message_id: str) -> bool:
    """Whether we queued a notification with this Message-ID (a mail that carries it is our own, back)."""
    return database.execute_sql(MESSAGE_ID_EXISTS, [message_id]).fetchone() is not None


def ids_by_message_id(message_ids: list[str]) -> dict[str, int]:
    """{Message-ID: outbox id} of our notifications among `message_ids`."""
    return _pairs(IDS_BY_MESSAGE_ID, message_ids)


def ticketed_ids_by_message_id(message_ids: list[str]) -> dict[str, int]:
    """{Message-ID: outbox id} of our notifications among `message_ids` that are about a ticket."""
    return _pairs(TICKETED_IDS_BY_MESSAGE_ID, message_ids)


def lease(now: datetime, batch: int, owner: str, lease_seconds: float, *, chat: bool) -> list[int]:
    """PostgreSQL: claim up to `batch` due deliveries (chat posts, or mail) for `owner` for
    `lease_seconds`; the ids claimed."""
    cursor = database.execute_sql(LEASE_CHAT if chat else LEASE_MAIL,
                                  [owner, float(lease_seconds), Delivery.next_attempt_at.db_value(now), owner, batch])
    return [row_id for (row_id,) in cursor.fetchall()]


def lock_rows(outbox_ids: list[int]) -> None:
    """PostgreSQL: lock these outbox rows, in id order, until the transaction ends."""
    database.execute_sql(LOCK_ROWS.format(marks=marks(len(outbox_ids))), outbox_ids)


def mark_sent(delivery_ids: list[int], now: datetime) -> int:
    """Record these deliveries sent at `now`; how many rows changed."""
    return _execute(MARK_SENT, delivery_ids, Delivery.sent_at.db_value(now))


def settle_sent(outbox_ids: list[int], now: datetime) -> int:
    """Mark sent at `now` the queued rows among these whose every delivery is sent; how many changed."""
    return _execute(SETTLE_SENT, outbox_ids, Outbox.sent_at.db_value(now))


def _execute(statement: str, ids: list[int], first: object) -> int:
    return database.execute_sql(statement.format(marks=marks(len(ids))), [first, *ids]).rowcount


def _pairs(statement: str, message_ids: list[str]) -> dict[str, int]:
    return dict(database.execute_sql(statement.format(marks=marks(len(message_ids))), message_ids).fetchall())


# The caps' lookups (ratelimit.py), once per tick batch or per recipient. `"status" || ''` keeps
# the planner off the status index, which holds nearly every mail ever sent (SQLite took it and a
# tick cost what the outbox held); the ticket index finds a batch's few.
TICKET_MAIL_TIMES = ('SELECT "ticket_id", "created_at" FROM "outbox" WHERE "ticket_id" IN ({marks}) '
                     'AND "created_at" > ? AND "status" || \'\' IN ({statuses})')
# `"recipient" || ''` keeps the planner off the recipient index: a tier group has received thousands
# of mails, while refused or bounced deliveries are few (the status index finds them)
LAST_PERMANENT_FAILURE = ('SELECT "failed_at", "code", "status" FROM "delivery" WHERE "recipient" || \'\' = ? '
                          'AND "status" IN (\'refused\', \'bounced\') AND "failed_at" > ? '
                          'ORDER BY "failed_at" DESC LIMIT 1')


def ticket_mail_times(ticket_ids: list[int], since: datetime, statuses: tuple[str, ...]) -> list[tuple[int, datetime]]:
    """(ticket id, created_at) of every notification about these tickets queued after `since`
    whose status is one of `statuses`."""
    sql = TICKET_MAIL_TIMES.format(marks=marks(len(ticket_ids)), statuses=marks(len(statuses)))
    found = database.execute_sql(sql, [*ticket_ids, Outbox.created_at.db_value(since), *statuses]).fetchall()
    return [(ticket_id, Outbox.created_at.python_value(at)) for ticket_id, at in found]


def last_permanent_failure(address: str, since: datetime) -> tuple[datetime, int | None, str] | None:
    """(failed_at, SMTP code, "refused" or "bounced") of the latest delivery to `address` refused
    for good or bounced after `since`, or None."""
    row = database.execute_sql(LAST_PERMANENT_FAILURE, [address, Delivery.failed_at.db_value(since)]).fetchone()
    if row is None:
        return None
    failed_at, code, status = row
    return Delivery.failed_at.python_value(failed_at), code, status
