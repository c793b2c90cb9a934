"""`escalate status` exits 3 when no daemon is running, as `systemctl is-active` does, and 0 when
one is — known the way status always knows it: on SQLite the daemon's instance lock, on
PostgreSQL a fresh heartbeat of an instance sharing the database."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner
from escalate.cli import main
from escalate.ops import heartbeat
from escalate.ops.instance import InstanceLock
from escalate.store import db

from tests.conftest import TEST_RULES


@pytest.fixture
def status(database_url: str, rules_file):
    env = {"ESCALATE_DB_URL": database_url, "ESCALATE_RULES": str(rules_file(TEST_RULES)), "ESCALATE_NOW": "",
           "ESCALATE_IMAP_URL": "", "ESCALATE_SMTP_URL": ""}
    assert CliRunner().invoke(main, ["db", "migrate"], env=env).exit_code == 0  # status never creates a database

    def invoke(*args: str):
        result = CliRunner().invoke(main, ["status", *args], env=env, catch_exceptions=False)
        db.close()
        return result
    return invoke


def test_no_daemon_exits_3_after_the_report(status):
    shown = status()
    assert shown.exit_code == 3 and shown.stdout.startswith("daemon:      not running\n")
    as_json = status("--json")
    assert as_json.exit_code == 3 and json.loads(as_json.stdout)["daemon"]["running"] is False


def test_a_running_daemon_exits_0_on_sqlite(status, database_url):
    with InstanceLock(database_url):  # what `escalate run` holds for as long as it runs
        shown = status()
        assert shown.exit_code == 0 and f"running, pid {os.getpid()}" in shown.stdout
    assert status().exit_code == 3  # stopped: the lock is gone


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_heartbeating_instance_exits_0_on_postgresql(status, database_url):
    assert status().exit_code == 3
    db.connect(database_url)
    started = heartbeat.wall_now()
    heartbeat.beat("host-a:1:abc", ["INBOX"], started, started)  # what each daemon writes every few seconds
    db.close()
    shown = status()
    assert shown.exit_code == 0 and "host-a:1:abc" in shown.stdout
    db.connect(database_url)
    heartbeat.mark_stopped("host-a:1:abc", heartbeat.wall_now())
    db.close()
    assert status().exit_code == 3
