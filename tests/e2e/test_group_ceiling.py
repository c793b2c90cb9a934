"""A tier group's hourly ceiling, end to end on real Dovecot and aiosmtpd: a flood of tickets
reaches the group as at most 30 escalation mails an hour plus one summary of the rest, never
hundreds of mails, and nothing held back goes unmentioned."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from escalate.testing.loopback import Dovecot, SmtpSink

from ..conftest import TEST_RULES

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
CUSTOMERS = 36  # distinct customers (the per-sender ticket limit is not what this tests)


def cycle(cli, minutes: int) -> None:
    cli("run", "--once", "--now", (T0 + timedelta(minutes=minutes)).isoformat())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_flood_reaches_a_tier_group_as_thirty_mails_and_one_summary_an_hour(cli, rules_file, dovecot: Dovecot,
                                                                              smtp_sink: SmtpSink, mail):
    rules_file(TEST_RULES.replace("group_mails_per_hour: 0", "group_mails_per_hour: 30"))  # as rules.yaml ships
    for n in range(CUSTOMERS):
        dovecot.append(mail(sender=f"shop{n}@customer{n}.example", subject=f"Checkout outage at shop {n}",
                            body="Nothing works.", message_id=f"flood{n}@customer.example"))
    cycle(cli, 0)
    cycle(cli, 16)  # 15 minutes without a first response: every ticket escalates to tier 1 at once
    to_tier1 = [m for m in smtp_sink.messages if m.rcpt_tos == ["tier1@example.com"]]
    escalations = [m for m in to_tier1 if m.message["X-Escalate-Kind"] == "escalation"]
    summaries = [m for m in to_tier1 if m.message["X-Escalate-Kind"] == "group-summary"]
    assert len(escalations) == 30
    assert len(summaries) == 1
    body = summaries[0].message.get_body(("plain",)).get_content()
    assert f"These {CUSTOMERS - 30} escalations were held back" in " ".join(body.split())
    held_refs = {line.split("[", 1)[1].split("]", 1)[0] for line in body.splitlines() if "] Escalation to" in line}
    mailed_refs = {str(m.message["Subject"]).split("]", 1)[0].lstrip("[") for m in escalations}
    assert len(held_refs) == CUSTOMERS - 30 and not held_refs & mailed_refs  # every ticket told once, one way
    at = (T0 + timedelta(minutes=17)).isoformat()
    status = json.loads(cli("status", "--json", "--now", at, expect=3).output)
    assert status["held_by_group_ceiling_last_hour"] == {"1": CUSTOMERS - 30}
    assert "tier 1: 6 held back for a summary" in cli("status", "--now", at, expect=3).output

    # the reminders ten minutes on find the hour's ceiling full: held, and listed in the next summary
    # once 15 minutes have passed since the last, not one mail each
    before = len(smtp_sink.messages)
    cycle(cli, 26)
    assert [m for m in smtp_sink.messages[before:] if m.rcpt_tos == ["tier1@example.com"]] == []
    cycle(cli, 32)
    later = [m for m in smtp_sink.messages[before:] if m.rcpt_tos == ["tier1@example.com"]]
    assert [m.message["X-Escalate-Kind"] for m in later] == ["group-summary"]
    assert "Reminder 1" in later[0].message.get_body(("plain",)).get_content()
