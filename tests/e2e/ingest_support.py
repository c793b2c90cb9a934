"""Helpers for the ingest tests: run escalate as the admin would (CLI in-process or a subprocess),
read the database as a script would, and check the ingest invariants (docs/reliability.md, "Mail in")."""

from __future__ import annotations

import collections
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from escalate.testing.loopback import Dovecot
from imapclient import IMAPClient

NOW = "2026-11-02T09:00:00+00:00"


def database(env: dict[str, str]) -> sqlite3.Connection:
    return sqlite3.connect(env["ESCALATE_DB_URL"].removeprefix("sqlite:///"))


def rows(env: dict[str, str], sql: str, *args) -> list[tuple]:
    with database(env) as connection:
        return connection.execute(sql, args).fetchall()


def scalar(env: dict[str, str], sql: str, *args):
    return rows(env, sql, *args)[0][0]


def run_once(env: dict[str, str], *options: str, extra: dict[str, str] | None = None, now: str = NOW,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """`escalate [OPTIONS] run --once` as its own process, as cron runs it (crash tests kill it)."""
    environment = {k: v for k, v in os.environ.items() if k != "ESCALATE_CRASHPOINT"}
    return subprocess.run([sys.executable, "-m", "escalate", *options, "run", "--once", "--now", now, "--json"],
                          env={**environment, **env, **(extra or {})}, capture_output=True, text=True, timeout=timeout)


def cycle(cli, now: str = NOW) -> dict:
    return json.loads(cli("run", "--once", "--now", now, "--json").stdout)


def server_flags(dovecot: Dovecot, folder: str = "INBOX") -> dict[int, set[bytes]]:
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10) as client:
        client.login("support", dovecot.users["support"])
        client.select_folder(folder, readonly=True)
        return {uid: set(data[b"FLAGS"]) for uid, data in client.fetch(client.search("ALL"), ["FLAGS"]).items()}


def server_count(dovecot: Dovecot, folder: str) -> int:
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10) as client:
        client.login("support", dovecot.users["support"])
        if not client.folder_exists(folder):
            return 0
        return client.select_folder(folder, readonly=True)[b"EXISTS"]


def append_many(dovecot: Dovecot, raws: list[bytes], folder: str = "INBOX") -> None:
    """APPEND in order over one connection (the fixture's append logs in per message), as one
    MULTIAPPEND command (Dovecot's; one APPEND per message costs about 6 ms each)."""
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=30) as client:
        client.login("support", dovecot.users["support"])
        if not client.folder_exists(folder):
            client.create_folder(folder)
        if raws:
            client.multiappend(folder, raws)


def assert_ingest_invariants(env: dict[str, str], *, message_ids: set[str] | None = None,
                             tickets: int | None = None) -> None:
    """No message stored twice, each input stored, the expected tickets, a sound database file."""
    with database(env) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = [mid for (mid,) in connection.execute("SELECT message_id FROM message WHERE collision = 0")]
        duplicates = {mid: n for mid, n in collections.Counter(stored).items() if n > 1 and mid is not None}
        assert duplicates == {}, f"stored twice: {duplicates}"
        if message_ids is not None:
            assert set(stored) == message_ids, (f"missing {sorted(message_ids - set(stored))[:5]}, "
                                                f"unexpected {sorted(set(stored) - message_ids)[:5]}")
        if tickets is not None:
            assert connection.execute("SELECT count(*) FROM ticket").fetchone() == (tickets,)
        # every message on a ticket is counted there
        mismatched = connection.execute(
            "SELECT t.ref FROM ticket t WHERE t.message_count != (SELECT count(*) FROM message m WHERE m.ticket_id = t.id)"
        ).fetchall()
        assert mismatched == []


DATA = Path(__file__).resolve().parents[1] / "data" / "mail"
