"""`escalate status` tells when each folder was last polled and when mail last arrived, apart:
a poll that finds nothing moves the first, not the second, and a folder without mail says so."""

from __future__ import annotations

import json
from datetime import timedelta

from escalate.clock import parse_time
from escalate.testing.loopback import Dovecot

T0 = parse_time("2026-11-02T09:00:00+00:00")


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def folder_line(cli, minutes: int) -> str:
    """The INBOX row of the Folders table, its columns one space apart."""
    lines = cli("status", "--now", at(minutes), expect=3).output.splitlines()
    table = lines[[line.strip() for line in lines].index("Folders"):]
    return next(" ".join(line.split()) for line in table if line.startswith("INBOX"))


def test_status_shows_the_last_poll_and_the_last_mail_apart(cli, dovecot: Dovecot, mail):
    cli("run", "--once", "--now", at(0))  # the first poll: no mail
    assert folder_line(cli, 10) == "INBOX 0 2026-11-02 09:00 UTC (10m ago) none yet"

    dovecot.append(mail(sender="carl@customer.example", subject="Printer", body="It jams."))
    cli("run", "--once", "--now", at(20))  # mail comes
    cli("run", "--once", "--now", at(30))  # a poll that finds nothing new
    assert folder_line(cli, 35) == "INBOX 1 2026-11-02 09:30 UTC (5m ago) 2026-11-02 09:20 UTC (15m ago)"
    assert "just now" in folder_line(cli, 30)  # never "0s ago"
    [folder] = json.loads(cli("status", "--json", "--now", at(35), expect=3).output)["folders"]
    assert (folder["last_polled_at"], folder["last_mail_at"]) == (at(30), at(20))
    assert (folder["polled_seconds_ago"], folder["mail_seconds_ago"]) == (300, 900)
