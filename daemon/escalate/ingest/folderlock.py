"""Which IMAP folders this instance may ingest: one instance per folder at a time
(two instances polling one folder would store its mail twice).

On PostgreSQL each folder is guarded by a session-level advisory lock, `pg_try_advisory_lock(key)`
with the key derived stably from account and folder. Session locks live as long as the session,
so they are taken on a connection of their own, outside peewee (whose connections are per thread
and closed after every stage run), kept open while anything is held. When the holder dies, the
server ends its session and the lock is free: on loopback at once, across a network when TCP
keepalive gives up (set below to about 25 s). Whoever tries next takes the folder over.

Before each poll the holder checks its lock connection; a broken one (PostgreSQL restarted, the
session terminated) means it holds nothing any more: it reconnects and tries again like anyone
else, and never crashes for it. Between that check and the end of the poll another instance
could take the folder over after a connection loss; the unique keys (Message.dedupe_key, one
quarantine record per folder message) keep even that overlap from storing anything twice.

On SQLite the instance flock (instance.py) already makes this the only ingester: every folder is
held.
"""

from __future__ import annotations

import hashlib
import logging
import threading

from escalate.config import ServerUrl
from escalate.store.db import postgres_params

log = logging.getLogger(__name__)

# the session is ended by the server this long after the holder's host goes silent (idle+interval×count)
KEEPALIVE = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
             "tcp_user_timeout": 25_000}  # ms: a query on a black-holed connection fails instead of hanging
SERVER_KEEPALIVE = "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"


def account_name(imap: ServerUrl) -> str:
    """An IMAP account as every instance names it, "user@host:port" (never the password)."""
    user = f"{imap.username}@" if imap.username else ""
    return f"{user}{imap.host}:{imap.port}"


def folder_name(imap: ServerUrl, folder: str) -> str:
    return f"{account_name(imap)}/{folder}"


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key, the same in every instance and every release."""
    return int.from_bytes(hashlib.sha256(f"escalate:folder:{name}".encode()).digest()[:8], "big", signed=True)


class FolderLocks:
    """The folders this instance holds. `claim(name)` before ingesting it: True while it is ours."""

    def __init__(self, db_url: str, *, identity: str = ""):
        self.postgres = db_url.startswith(("postgresql:", "postgres:"))
        self.db_url = db_url
        self.identity = identity
        self._connection = None
        self._held: set[str] = set()
        self._guard = threading.Lock()  # held() is read by the heartbeat thread

    def claim(self, name: str) -> bool:
        if not self.postgres:
            with self._guard:
                self._held.add(name)
            return True
        import psycopg

        try:
            if name in self._held:
                self._connection.execute("SELECT 1")  # still our session, so still our lock
                return True
            connection = self._connect()
            got = connection.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(name),)).fetchone()[0]
        except psycopg.Error as error:
            if self._held:
                log.warning("lost the folder lock connection (%s); no longer ingesting %s", error,
                            ", ".join(sorted(self._held)))
            else:
                log.warning("cannot take folder locks: %s", error)
            self._drop()
            return False
        if got:
            with self._guard:
                self._held.add(name)
            log.info("now ingesting %s (folder lock taken)", name)
        return got

    def held(self) -> list[str]:
        with self._guard:
            return sorted(self._held)

    def release(self, name: str) -> None:
        """Let another instance have one folder (this one cannot reach its account)."""
        if name not in self._held:
            return
        if self.postgres and self._connection is not None:
            try:
                self._connection.execute("SELECT pg_advisory_unlock(%s)", (lock_key(name),))
            except Exception:  # a broken session has let go of everything anyway
                self._drop()
                return
        with self._guard:
            self._held.discard(name)

    def release_all(self) -> None:
        """Let other instances have the folders (closing the session frees its locks)."""
        if self._held and self.postgres:
            log.info("releasing folder locks: %s", ", ".join(sorted(self._held)))
        self._drop()

    def _connect(self):
        import psycopg

        if self._connection is None or self._connection.closed or self._connection.broken:
            self._drop()
            name = f"escalate folders {self.identity}"[:63]
            self._connection = psycopg.connect(**postgres_params(self.db_url), autocommit=True, application_name=name,
                                               options=SERVER_KEEPALIVE, **KEEPALIVE)
        return self._connection

    def _drop(self) -> None:
        with self._guard:
            self._held.clear()
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # closing a dead connection can fail; it is gone either way
                pass
