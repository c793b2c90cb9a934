"""Opening a SQLite database that another connection is using: escalate waits for the other
connection instead of failing with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
import time

from escalate.store import db


def test_a_new_database_is_switched_to_wal_once_another_connections_write_is_done(tmp_path):
    # A second process on a new database (the daemon starting beside `escalate db migrate`): its
    # switch to WAL mode needs the file to itself, and SQLite refuses that at once, without the busy
    # timeout, while the other connection writes.
    path = tmp_path / "escalate.db"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other (x)")
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO other VALUES (1)")
    committed_at: list[float] = []

    def commit_later() -> None:
        time.sleep(0.3)
        committed_at.append(time.monotonic())
        writer.execute("COMMIT")

    committer = threading.Thread(target=commit_later)
    committer.start()
    try:
        database = db.connect(f"sqlite:///{path}")
        opened_at = time.monotonic()
    finally:
        committer.join()
        writer.close()
    assert committed_at and opened_at >= committed_at[0]
    assert database.execute_sql("PRAGMA journal_mode").fetchone() == ("wal",)
    assert database.execute_sql("SELECT x FROM other").fetchall() == [(1,)]  # the writer's row, not lost
