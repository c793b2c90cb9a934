"""The informed list's daily digest on real servers: `inform: true` adds escalated tickets to it,
and `run --once --now …` sends it once a day at `digest: {at: …}` in the rules' timezone.

Berlin is on CET (UTC+1) in November, so a digest at 08:00 is due at 07:00 UTC.
"""

from __future__ import annotations

import json

import pytest
from escalate.testing.loopback import Dovecot, SmtpSink

from ..conftest import TEST_RULES

RULES = (TEST_RULES
         .replace("timezone: UTC", 'timezone: Europe/Berlin\ndigest:\n  at: "08:00"')
         .replace("    lead: lead1@example.com\n", "    lead: lead1@example.com\n    informed: [Boss@Example.com, ops@example.com]\n")
         .replace("      next_tier_after: 2\n", "      next_tier_after: 2\n      inform: true\n", 1))


def cycle(cli, now: str) -> dict:
    return json.loads(cli("run", "--once", "--now", now, "--json").output)


def digests(sink: SmtpSink) -> list:
    return [m for m in sink.messages if m.message["X-Escalate-Kind"] == "digest"]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_informed_list_gets_one_digest_a_day_at_the_configured_time(cli, env, rules_file, dovecot: Dovecot,
                                                                        smtp_sink: SmtpSink, mail):
    env["ESCALATE_RULES"] = str(rules_file(RULES))
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="Error 502.",
                        message_id="c1@customer.example"))
    dovecot.append(mail(sender="dana@other.example", subject="Invoice export question", body="Where?",
                        message_id="d1@other.example"))
    cycle(cli, "2026-11-02T09:00:00+00:00")
    cycle(cli, "2026-11-02T09:16:00+00:00")  # T-1 escalates to tier 1, and is added to its digest
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["tier1@example.com"]]

    # the next morning, one minute before 08:00 Berlin: not yet
    cycle(cli, "2026-11-03T06:59:00+00:00")
    assert digests(smtp_sink) == []
    cycle(cli, "2026-11-03T07:00:30+00:00")
    smtp_sink.wait_for(3)
    # one SMTP transaction per member (each with its own VERP return path), one Message-ID
    assert sorted(m.rcpt_tos for m in digests(smtp_sink)) == [["boss@example.com"], ["ops@example.com"]]
    assert len({m.message["Message-ID"] for m in digests(smtp_sink)}) == 1
    digest = digests(smtp_sink)[0]
    text = digest.message.get_body(("plain",)).get_content()
    assert "Escalated in this period: 1" in text and "T-1" in text and "Checkout is down" in text
    assert "T-2" not in text.split("Resolved in this period")[0]  # never escalated: not in the list
    assert str(digest.message["Subject"]).startswith("Escalation digest 2026-11-02: 1 escalated")

    # later runs the same day, a restart, a second run at the same moment: still one digest
    for now in ("2026-11-03T07:00:30+00:00", "2026-11-03T07:30:00+00:00", "2026-11-03T18:00:00+00:00"):
        cycle(cli, now)
    assert len(digests(smtp_sink)) == 2  # one mail to each of the two members
    outbox = json.loads(cli("outbox", "list", "--json").output)
    assert [row["kind"] for row in outbox].count("digest") == 1

    # the day after: nothing new was added to the list, so no digest is sent
    cycle(cli, "2026-11-04T07:01:00+00:00")
    assert len(digests(smtp_sink)) == 2


def test_a_digest_moment_is_a_time_of_day_in_the_rules_timezone_and_errors_name_the_line(cli, env, rules_file):
    env["ESCALATE_RULES"] = str(rules_file(RULES.replace('at: "08:00"', "at: 25:00")))
    result = cli("rules", "check", expect=2)
    assert 'digest.at: expected a time of day like "08:00" (00:00 to 23:59), got "25:00"' in result.output
    line = RULES.splitlines().index('  at: "08:00"') + 1
    assert f"rules.yaml:{line}:7: digest.at" in result.output


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_instances_sharing_postgresql_queue_one_digest(database_url, rules_file):
    """The unique (list, day) key decides, not a check-then-insert each instance could pass."""
    import threading
    from datetime import datetime, timezone

    from escalate.engine import digest
    from escalate.outbound.templates import Renderer
    from escalate.rules.loader import load_ruleset
    from escalate.store import db
    from escalate.store.models import Digest, Outbox
    from escalate.tickets import audit
    from escalate.tickets import lifecycle as tickets

    db.connect(database_url)
    renderer = Renderer()
    ruleset = load_ruleset(rules_file(RULES), template_names=renderer.names())
    added = datetime(2026, 11, 2, 9, 16, tzinfo=timezone.utc)
    with db.write_transaction():
        ticket = tickets.open_ticket(subject="Checkout is down", normalised_subject="checkout is down",
                                     requester="carl@customer.example", requester_name="", severity="urgent",
                                     reference_prefix="T", now=added, reason="test")
        audit.record(ticket, added, "escalate", "digest", rule="urgent-no-first-response",
                     recipients=["boss@example.com", "ops@example.com"], tier=1)
    barrier = threading.Barrier(2)
    queued: list[int] = []

    def instance() -> None:
        barrier.wait()
        try:
            queued.append(len(digest.queue_due(ruleset, renderer, b"s" * 32, datetime(2026, 11, 3, 7, 1, tzinfo=timezone.utc))))
        finally:
            db.close()

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(queued) == [0, 1]
    assert Digest.select().where(Digest.recipients != digest.DAY_DONE).count() == 1
    assert Outbox.select().where(Outbox.kind == "digest").count() == 1
