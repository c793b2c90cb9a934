"""Two `escalate run` daemons on one PostgreSQL database and one IMAP folder. Exactly one of
them ingests the folder (status says which); nothing is stored twice; when the holder is killed
with SIGKILL the other takes the folder over and ingests the mail that arrives afterwards."""

from __future__ import annotations

import json
import signal
import time
from datetime import datetime, timezone
from typing import Any

import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.store import db
from escalate.store.models import Message, Quarantine, Ticket
from escalate.testing.loopback import Dovecot

from .daemon_process import DaemonProcess, wait_until

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def counts(database_url: str) -> tuple[int, int, int, int]:
    """(messages, distinct Message-IDs among them, tickets, quarantined) — read fresh from the database."""
    db.connect(database_url)  # migrates too, when the daemons have not yet: one more racer
    try:
        return (Message.select().count(), Message.select(Message.message_id).distinct().count(),
                Ticket.select().count(), Quarantine.select().count())
    finally:
        db.close()


def status_of(env: dict[str, str]) -> dict[str, Any]:
    """`escalate status --json`, whether an instance runs (exit 0) or none does yet or any more (exit 3)."""
    result = CliRunner().invoke(main, ["status", "--json"], env=env, catch_exceptions=False)
    db.close()
    assert result.exit_code in (0, 3), result.output
    return json.loads(result.output)


def holders(env: dict[str, str]) -> dict[int, list[str]]:
    """pid → folders, of the running instances that `escalate status --json` says hold a folder."""
    status = status_of(env)
    return {i["pid"]: i["holds"] for i in status["instances"] if i["state"] == "running" and i["holds"]}


def stop_all(daemons) -> list[tuple[int, str]]:
    """SIGTERM every daemon still running and collect (exit status, stderr): all are stopped before
    any is judged, so a failing test never leaves one behind."""
    exits = []
    for daemon in daemons:
        if daemon.poll() is None:
            try:
                exits.append(daemon.stop())
            except AssertionError as error:  # killed after the stop timeout
                exits.append((-9, str(error)))
    return exits


def beats_since(env: dict[str, str], moment: datetime) -> int:
    """How many running instances have sent a heartbeat after `moment`."""
    status = status_of(env)
    return sum(1 for i in status["instances"] if i["state"] == "running" and datetime.fromisoformat(
        i["heartbeat_at"].replace("Z", "+00:00")) > moment)


@pytest.mark.chaos
def test_two_daemons_on_one_folder_ingest_once_and_the_survivor_takes_over(env, dovecot: Dovecot, mail, database_url):
    first, second = DaemonProcess(env), DaemonProcess(env)
    daemons = {first.pid: first, second.pid: second}
    try:
        for i in range(12):
            dovecot.append(mail(sender=f"customer{i}@client{i}.example", subject=f"Problem number {i}",
                                body=f"Something broke ({i})."))
        wait_until("12 mails stored", lambda: counts(database_url)[0] >= 12)
        stored_at = datetime.now(timezone.utc)
        wait_until("both instances heartbeat after that", lambda: beats_since(env, stored_at) == 2)
        held = holders(env)
        assert list(held.values()) == [[f"support@127.0.0.1:{dovecot.port}/INBOX"]], held
        [holder_pid] = held
        assert all(d.poll() is None for d in daemons.values()), "a daemon died"

        # the holder dies without a chance to clean up; its session (and lock) goes with it
        daemons[holder_pid].send_signal(signal.SIGKILL)
        daemons[holder_pid].wait(timeout=10)
        survivor = daemons[second.pid if holder_pid == first.pid else first.pid]
        for i in range(12, 18):
            dovecot.append(mail(sender=f"customer{i}@client{i}.example", subject=f"Problem number {i}",
                                body=f"Something broke ({i})."))
        wait_until("the survivor ingests the 6 new mails", lambda: counts(database_url)[0] >= 18)
        # its next heartbeat says so (the killed one's row lists INBOX too until its last heartbeat is
        # LOST_AFTER_SECONDS old and status calls it lost: a product timer, not waited for here)
        wait_until("the survivor holds INBOX", lambda: holders(env).get(survivor.pid) == held[holder_pid])
        time.sleep(1.0)  # a few more polls: anything stored twice would show now
        assert counts(database_url) == (18, 18, 18, 0)  # 0 duplicate messages or tickets, nothing quarantined
    finally:
        exits = stop_all(daemons.values())
    assert all(code == 0 for code, _err in exits), exits

    # the survivor stopped and let go of INBOX; the killed one is listed as running (with what it held)
    # until its last heartbeat is LOST_AFTER_SECONDS old, then as lost
    listed = {i["pid"]: i for i in status_of(env)["instances"]}
    assert (listed[survivor.pid]["state"], listed[survivor.pid]["holds"]) == ("stopped", [])
    assert listed[holder_pid]["state"] in ("running", "lost")


@pytest.mark.chaos
def test_a_daemon_that_loses_its_lock_session_recovers_and_ingests_once(env, cli, dovecot: Dovecot, mail, database_url):
    daemon = DaemonProcess(env)
    try:
        dovecot.append(mail(sender="carl@customer.example", subject="Site down", body="All pages 500."))
        wait_until("the mail stored", lambda: counts(database_url)[0] >= 1)
        wait_until("the daemon holds INBOX", lambda: list(holders(env)) == [daemon.pid] or None)

        # its folder-lock session ends under it (what a PostgreSQL restart does to every session)
        database = db.connect(database_url)
        [(terminated,)] = database.execute_sql(
            # this test's database only: other runs may share the cluster
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name LIKE %s "
            "AND datname = current_database()",
            ("escalate folders %",)).fetchall()
        db.close()
        assert terminated == 1

        dovecot.append(mail(sender="dana@other.example", subject="Database down", body="Timeouts."))
        wait_until("the second mail stored", lambda: counts(database_url)[0] >= 2)
        assert daemon.poll() is None, "the daemon died"
        assert list(holders(env)) == [daemon.pid]  # it took the lock again
        assert counts(database_url) == (2, 2, 2, 0)
    finally:
        exits = stop_all([daemon])
    assert exits and all(code == 0 for code, _err in exits), exits
