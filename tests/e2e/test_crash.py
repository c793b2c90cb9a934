"""Kill -9 at every stage of a cycle, then restart: nothing lost, nothing done twice.

Each named crash point (crashpoints.py) makes `escalate run --once` die with os._exit(137) the
n-th time it gets there; the next run must finish the work exactly once. The one tolerated
duplicate is a send whose acknowledgement was lost, and it carries the same Message-ID.
The killed run is a process of its own; the runs after it are in-process CLI calls (`cli`), which
find only what the database and the servers hold, like a restarted process, without another
interpreter's start-up.
"""

from __future__ import annotations

import collections
import sqlite3

import pytest
from escalate.testing.loopback import Dovecot, SmtpSink

from ..conftest import TEST_RULES
from .ingest_support import run_once

pytestmark = pytest.mark.chaos  # kills at fault points or at random: `-m "not chaos"` skips it

IMMEDIATE_RULES = TEST_RULES.replace("no_first_response_for: 15m", "no_first_response_for: 0m")
NOW = "2026-11-02T09:00:00+00:00"
MAILS = 5

CRASHPOINTS = ["after-fetch", "after-parse", "in-txn-before-commit", "after-commit", "in-tick-before-commit",
               "in-render-before-commit", "after-data-before-mark-sent"]


@pytest.mark.parametrize("crashpoint", CRASHPOINTS)
def test_a_kill_at_any_stage_loses_and_repeats_nothing(crashpoint, env, cli, rules_file, dovecot: Dovecot,
                                                       smtp_sink: SmtpSink, mail, tmp_path):
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    for n in range(MAILS):
        dovecot.append(mail(sender=f"customer{n}@example.net", subject=f"Outage number {n}", body="down",
                            message_id=f"m{n}@example.net"))
    crashed = run_once(env, extra={"ESCALATE_CRASHPOINT": f"{crashpoint}:3"}, now=NOW, timeout=60)
    assert crashed.returncode == 137, crashed.stderr
    cli("run", "--once", "--now", NOW)  # the restart finishes the work
    cli("run", "--once", "--now", NOW)  # a further cycle changes nothing

    database = sqlite3.connect(env["ESCALATE_DB_URL"].removeprefix("sqlite:///"))
    assert database.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    message_ids = [row[0] for row in database.execute("SELECT message_id FROM message")]
    assert sorted(message_ids) == sorted(f"m{n}@example.net" for n in range(MAILS))
    assert database.execute("SELECT count(*) FROM ticket").fetchone() == (MAILS,)
    # one escalation per ticket in the database…
    per_ticket = database.execute("SELECT ticket_id, count(*) FROM outbox GROUP BY ticket_id").fetchall()
    assert sorted(count for _, count in per_ticket) == [1] * MAILS
    assert database.execute("SELECT count(*) FROM outbox WHERE status != 'sent'").fetchone() == (0,)
    # …and at the sink: each ticket's escalation arrived; a duplicate only from a lost acknowledgement
    received = collections.Counter(m.message["Message-ID"] for m in smtp_sink.messages)
    subjects = {m.message["Message-ID"]: m.message["Subject"] for m in smtp_sink.messages}
    assert len(received) == MAILS, subjects
    duplicates = {mid: n for mid, n in received.items() if n > 1}
    if crashpoint == "after-data-before-mark-sent":
        # the sender keeps several connections busy at once: every send in flight when the
        # process died may go again — once, with its identical Message-ID
        assert set(duplicates.values()) <= {2}
    else:
        assert duplicates == {}
    # every ticket has its creation and escalation in the audit log
    actions = collections.Counter(a for (a,) in database.execute("SELECT action FROM event"))
    assert actions["created"] == MAILS and actions["escalated"] == MAILS
