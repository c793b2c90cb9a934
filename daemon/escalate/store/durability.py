"""SQLite's commit modes, by name.

db.connect opens SQLite in WAL mode with `synchronous=FULL`: every commit is on disk before it
returns, so it survives power loss as well as a crash of the process. One writer relaxes that on
purpose, within a block: the sender, recording send outcomes (`crash_safe_commits`).
PostgreSQL has its own settings (`synchronous_commit`), which escalate leaves to the administrator.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import peewee

from escalate.store.models import database

# a commit is synced to disk before it returns: survives a crash of the process and power loss
DURABLE = "FULL"
# WAL commits are synced at checkpoints only: they survive a crash of the process; power loss may
# roll back the last few
CRASH_SAFE = "NORMAL"

_PRAGMA_SYNCHRONOUS = "PRAGMA synchronous"
_SET_SYNCHRONOUS = "PRAGMA synchronous={mode}"  # a PRAGMA takes no parameters


@contextmanager
def crash_safe_commits() -> Iterator[None]:
    """SQLite `synchronous=NORMAL` (CRASH_SAFE) within the block, the mode before restored after.

    For recording send outcomes: if power fails, a few "sent" marks may roll back — with anything
    written in their transaction — and those mails go again with their identical Message-ID, the
    duplicate the outbox tolerates. In exchange a commit per batch of replies costs no fsync. A
    crash of the process loses nothing either way. PostgreSQL: no change."""
    db = database.obj
    if not isinstance(db, peewee.SqliteDatabase):
        yield
        return
    previous = int(db.execute_sql(_PRAGMA_SYNCHRONOUS).fetchone()[0])
    db.execute_sql(_SET_SYNCHRONOUS.format(mode=CRASH_SAFE))
    try:
        yield
    finally:
        db.execute_sql(_SET_SYNCHRONOUS.format(mode=previous))
