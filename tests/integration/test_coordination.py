"""Instances sharing one database: heartbeats and what `status` makes of them (SQLite and
PostgreSQL), and the folder locks that let one instance at a time ingest a folder (PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from escalate.ingest.folderlock import FolderLocks
from escalate.ops import heartbeat
from escalate.store import db
from escalate.store.models import Instance


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_instances_are_running_then_lost_or_stopped_then_pruned(database_url):
    db.connect(database_url)
    start = heartbeat.wall_now()
    heartbeat.beat("a:1:x", ["u@imap:143/INBOX"], start, start)
    heartbeat.beat("b:2:y", [], start, start)
    heartbeat.beat("a:1:x", ["u@imap:143/INBOX", "u@imap:143/Sent"], start, start + timedelta(seconds=3))
    later = start + timedelta(seconds=5)
    assert [(i["name"], i["state"], i["holds"]) for i in heartbeat.listing(later)] == [
        ("a:1:x", "running", ["u@imap:143/INBOX", "u@imap:143/Sent"]), ("b:2:y", "running", [])]

    heartbeat.mark_stopped("b:2:y", later)
    silent = start + timedelta(seconds=3 + heartbeat.LOST_AFTER_SECONDS + 1)
    # a lost instance is shown, but holds nothing: its locks went with its connection
    assert [(i["name"], i["state"], i["holds"]) for i in heartbeat.listing(silent)] == [
        ("a:1:x", "lost", []), ("b:2:y", "stopped", [])]

    assert heartbeat.prune(start + heartbeat.PRUNE_AFTER + timedelta(seconds=2)) == 0  # a beat at +3 s
    assert heartbeat.prune(later + heartbeat.PRUNE_AFTER + timedelta(seconds=1)) == 2
    assert Instance.select().count() == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_every_folder_is_held_by_the_one_instance(database_url):
    locks = FolderLocks(database_url)
    assert locks.claim("u@imap:143/INBOX") and locks.claim("u@imap:143/Sent")
    assert locks.held() == ["u@imap:143/INBOX", "u@imap:143/Sent"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_folder_is_held_by_one_instance_and_taken_over_when_its_session_ends(database_url):
    first, second = FolderLocks(database_url, identity="first"), FolderLocks(database_url, identity="second")
    try:
        assert first.claim("u@imap:143/INBOX")
        assert first.claim("u@imap:143/INBOX")  # still ours on the next poll
        assert not second.claim("u@imap:143/INBOX")
        assert second.claim("u@imap:143/Sent")  # another folder is free
        assert (first.held(), second.held()) == (["u@imap:143/INBOX"], ["u@imap:143/Sent"])

        # the holder's session ends (server restart, pg_terminate_backend, its host gone)
        database = db.connect(database_url)
        [(terminated,)] = database.execute_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'escalate folders first'"
        ).fetchall()
        assert terminated
        # pg_terminate_backend only signals: the lock goes when that backend has exited, so the
        # other instance gets it on one of its next polls (the daemon retries every 2 s)
        deadline = time.monotonic() + 10
        while not second.claim("u@imap:143/INBOX"):
            assert time.monotonic() < deadline, "the folder was not taken over within 10 s"
            time.sleep(0.1)
        assert not first.claim("u@imap:143/INBOX")  # the old holder knows it lost it, and does not crash
        assert first.held() == []

        second.release_all()
        assert second.held() == []
        assert first.claim("u@imap:143/INBOX")  # reconnects and takes it back
    finally:
        first.release_all()
        second.release_all()
