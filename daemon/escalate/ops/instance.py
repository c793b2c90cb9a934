"""One evaluator and sender per SQLite database: a second daemon on the same file refuses to
run them, so there are never two senders.

Two daemons on one SQLite file would both evaluate and both send, so every notification would go
out twice. The daemon (and `run --once`) holds an exclusive flock on `<database>.lock` for as long
as it runs; the kernel releases it when the process dies, even by SIGKILL, so a crash never leaves
a stale lock behind. PostgreSQL coordinates several instances in the database instead.
"""

from __future__ import annotations

import fcntl
import os
import socket
import uuid
from functools import cache
from pathlib import Path

from escalate.errors import EscalateError
from escalate.store import private
from escalate.store.db import sqlite_path


@cache
def identity() -> str:
    """This process's name among instances sharing a database: host, pid and a random suffix (a pid
    is reused after a restart; a lease or heartbeat left by the dead process must not look like ours)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class AlreadyRunning(EscalateError, RuntimeError):
    """Another escalate process holds the database: this one must not evaluate or send."""


class InstanceLock:
    def __init__(self, db_url: str):
        path = sqlite_path(db_url)
        self.path = Path(f"{path}.lock") if path and path != ":memory:" else None
        self._handle = None

    def acquire(self) -> None:
        if self.path is None:
            return
        handle = self._open()
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlreadyRunning(
                f"another escalate process (pid {holder}) is already evaluating and sending on "
                f"{self.path.with_suffix('')}; a second one would send every notification twice. "
                "Stop it first, or use PostgreSQL (ESCALATE_DB_URL=postgresql://…) to run several instances."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def holder(self) -> int | None:
        """The pid holding the lock, or None when no daemon is running (for `escalate status`)."""
        if self.path is None or not self.path.exists():
            return None
        with self._open() as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
            fcntl.flock(handle, fcntl.LOCK_UN)
            return None

    def _open(self):
        """The lock file, created 0600 (it sits beside the database, in its private directory)."""
        return os.fdopen(private.open_file(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND), "a+", encoding="ascii")

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing drops the flock
            self._handle = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
