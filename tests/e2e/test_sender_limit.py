"""One outside address cannot open tickets without end: past its limit, its new mail goes onto its
latest ticket (on the ticket, in front of the team, escalated once), visible in `status` and metrics.

Real Dovecot and aiosmtpd; time moves with --now.
"""

from __future__ import annotations

import json

from escalate import clock
from escalate.ops.metrics import DatabaseCollector
from escalate.outbound.ratelimit import NEW_TICKETS_PER_SENDER
from escalate.store import db

from .test_replies import RULES, at, cycle, show

PER_HOUR = min(count for _, count in NEW_TICKETS_PER_SENDER)


def test_a_flood_from_one_address_opens_its_limit_of_tickets_and_escalates_only_those(env, rules_file, cli, dovecot,
                                                                                       smtp_sink, mail):
    env["ESCALATE_RULES"] = str(rules_file(RULES))
    flood = 3 * PER_HOUR
    for n in range(flood):
        dovecot.append(mail(sender="mallory@flood.example", subject=f"URGENT outage number {n}", body="down!",
                            message_id=f"flood-{n}@flood.example"))
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="502",
                        message_id="carl-1@customer.example"))
    for n in range(PER_HOUR + 1):  # a team member opening tickets for customers has no limit
        dovecot.append(mail(sender="alice@example.com", subject=f"Customer call {n}: site down", body="logged by phone",
                            message_id=f"alice-{n}@example.com"))
    result = cycle(cli, 0)
    assert result["ingested"] == {"ticket": PER_HOUR + 1 + PER_HOUR + 1, "limited": flood - PER_HOUR}

    listed = json.loads(cli("tickets", "list", "--json").output)
    floods = [t for t in listed if t["requester"] == "mallory@flood.example"]
    assert len(floods) == PER_HOUR
    assert sum(t["message_count"] for t in floods) == flood  # every mail kept, none held or dropped
    latest = max(floods, key=lambda t: int(t["ref"].split("-")[1]))
    assert latest["message_count"] == flood - PER_HOUR + 1
    detail = show(cli, latest["ref"])
    limited = [e for e in detail["events"] if e["action"] == "sender-ticket-limit"]
    assert len(limited) == flood - PER_HOUR and "ticket limit: mallory@flood.example" in limited[0]["detail"]["reason"]
    assert limited[-1]["detail"]["subject"] == f"URGENT outage number {flood - 1}"

    cycle(cli, 16)  # urgent, no first response: one escalation per ticket, not per mail
    escalations = [m for m in smtp_sink.wait_for(len(listed)) if m.message["X-Escalate-Kind"] == "escalation"]
    assert len(escalations) == len(listed) == PER_HOUR + 1 + PER_HOUR + 1

    status = json.loads(cli("status", "--json", "--now", at(20), expect=3).output)
    assert status["ticket_limit"]["senders_limited_last_24h"] == 1  # mallory; alice is on a roster
    assert status["ticket_limit"]["mails_threaded_last_24h"] == flood - PER_HOUR
    assert f"ticket limit: {flood - PER_HOUR} mail(s) from 1 sender(s)" in cli("status", "--now", at(20), expect=3).output
    db.connect(env["ESCALATE_DB_URL"])
    clock.set_now(clock.parse_time(at(20)))
    gauges = {m.name: m.samples[0].value for m in DatabaseCollector().collect()
              if m.samples}  # a labelled family with nothing to count has no sample
    assert gauges["escalate_ticket_limit_senders"] == 1 and gauges["escalate_ticket_limit_mails"] == flood - PER_HOUR

    # an hour later the hourly window has room again: a new subject opens a ticket
    dovecot.append(mail(sender="mallory@flood.example", subject="Another question", body="?",
                        message_id="later@flood.example"))
    assert cycle(cli, 75)["ingested"] == {"ticket": 1}
