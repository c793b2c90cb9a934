"""The escalation ladder as a user meets it: the shipped rules.yaml, real Dovecot and aiosmtpd,
`run --once` every 15 minutes of the office's working time, and what each tier group receives."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest
from escalate.testing.loopback import Dovecot, SmtpSink

from ..conftest import REPO

GROUPS = {"tier1@example.com": 1, "tier2@example.com": 2, "tier3@example.com": 3}
TOP_LEAD = "kim@example.com"  # tier 3's lead in the shipped rules
# Monday 2 November 2026, 08:30 in Berlin (CET, UTC+1): the office calendar opens at 08:00
OPENED = datetime(2026, 11, 2, 7, 30, tzinfo=timezone.utc)


@pytest.fixture
def shipped(rules_file):
    return rules_file((REPO / "rules.yaml").read_text(encoding="utf-8"))


@pytest.fixture
def env(env, shipped):  # the conftest environment, with the shipped rules instead of the test rules
    return {**env, "ESCALATE_RULES": str(shipped)}


def working_ticks(days: int):
    """Every 15 minutes of the office's working time (Mon-Fri 08:00-18:00 Berlin) from OPENED."""
    day = OPENED.replace(hour=7, minute=0)
    for _ in range(days):
        moment = max(day, OPENED)
        while moment < day.replace(hour=17, minute=0):
            yield moment
            moment += timedelta(minutes=15)
        day += timedelta(days=1)


def cycle(cli, at: datetime) -> None:
    cli("run", "--once", "--now", at.isoformat())


def show(cli, ref: str) -> dict:
    return json.loads(cli("tickets", "show", ref, "--json").output)


LADDER_KINDS = ("escalation", "reminder", "next-tier")


def tier_mails(messages) -> list:
    """The ladder's mails to the tier groups (not confirmations of what a member did)."""
    return [m for m in messages if any(r in GROUPS for r in m.rcpt_tos)
            and m.message["X-Escalate-Kind"] in LADDER_KINDS]


def reminder_number(message) -> int | None:
    subject = str(message.message["Subject"])
    if "] Reminder " not in subject:
        return None
    return int(subject.split("] Reminder ", 1)[1].split(",", 1)[0])


def check_ladder_mails(per_tick: list[list]) -> list:
    """At most one tier mail per tick; never down the tiers; reminders numbered up from 1 per tier."""
    sent = []
    for mails in per_tick:
        assert len(mails) <= 1, [m.message["Subject"] for m in mails]
        sent += mails
    tiers = [GROUPS[m.rcpt_tos[0]] for m in sent]
    assert tiers == sorted(tiers), f"a mail went down the ladder: {tiers}"
    for tier in set(tiers):
        numbers = [reminder_number(m) for m in sent if GROUPS[m.rcpt_tos[0]] == tier]
        reminders = [n for n in numbers if n is not None]
        assert reminders == list(range(1, len(reminders) + 1)), (tier, numbers)
    return sent


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unanswered_high_ticket_climbs_once_and_stops(cli, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Export is broken for all invoices",
                        body="Every invoice export fails since this morning.", date=OPENED.isoformat()))
    per_tick = []
    for at in working_ticks(3):
        before = len(smtp_sink.messages)
        cycle(cli, at)
        per_tick.append(tier_mails(smtp_sink.messages[before:]))
    assert show(cli, "T-1")["severity"] == "high"
    sent = check_ladder_mails(per_tick)
    counts = Counter(GROUPS[m.rcpt_tos[0]] for m in sent)
    assert 3 <= len(sent) <= 25, counts
    assert set(counts) == {1, 2, 3}  # it climbed all the way
    unanswered = [m for m in smtp_sink.messages if m.rcpt_tos == [TOP_LEAD] and "Unanswered" in m.message["Subject"]]
    assert len(unanswered) == 1
    assert "no further reminders" in unanswered[0].message.get_body(("plain",)).get_content()
    detail = show(cli, "T-1")
    assert detail["ladder"]["state"] == "exhausted" and detail["ladder"]["exhausted"] is True
    assert detail["ladder"]["tier"] == 3
    listed = json.loads(cli("tickets", "list", "--json").output)
    assert listed[0]["ladder"] == "exhausted"
    # the count a person notices: mails per tier over three working days
    print(f"tier-group mails in 3 working days: {dict(sorted(counts.items()))}, total {len(sent)}")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_ack_from_tier_one_stops_the_ladder_and_every_group_hears_of_it(cli, dovecot: Dovecot,
                                                                           smtp_sink: SmtpSink, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Export is broken for all invoices",
                        body="Every invoice export fails since this morning.", message_id="c1@customer.example",
                        date=OPENED.isoformat()))
    ticks = list(working_ticks(3))
    per_tick, acked_at = [], None
    for at in ticks:
        before = len(smtp_sink.messages)
        cycle(cli, at)
        per_tick.append(tier_mails(smtp_sink.messages[before:]))
        sent = [m for mails in per_tick for m in mails]
        if acked_at is None and len(sent) == 2:
            # alice (tier 1) answers the second mail: the ticket is hers
            second = sent[1]
            dovecot.append(mail(sender="Alice <alice@example.com>", subject="Re: " + second.message["Subject"],
                                body="#ack\nLooking at the export job now.\n",
                                in_reply_to=second.message["Message-ID"].strip("<>")))
            acked_at = at
    sent = check_ladder_mails(per_tick)
    detail = show(cli, "T-1")
    assert detail["acknowledged_by"] == "alice@example.com"
    after_ack = [m for m in sent[2:]]
    # tier 1 is never reminded again; a rule asking for a higher tier than the acknowledging one
    # (the decision matrix, a day unresolved) may start a new ladder there, bounded like any other
    assert all(GROUPS[m.rcpt_tos[0]] > 1 for m in after_ack), [m.message["Subject"] for m in after_ack]
    assert len(after_ack) <= 5
    confirmation = [m for m in smtp_sink.messages if "Acknowledged by alice@example.com" in str(m.message["Subject"])]
    assert len(confirmation) == 1 and confirmation[0].rcpt_tos == ["tier1@example.com"]
    assert detail["escalations"][0]["state"] == "acknowledged"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_ack_is_confirmed_to_every_tier_group_that_was_mailed(cli, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Export is broken for all invoices",
                        body="Every invoice export fails.", date=OPENED.isoformat()))
    for at in working_ticks(1):
        cycle(cli, at)
        if any(m.rcpt_tos == ["tier2@example.com"] for m in smtp_sink.messages):
            break
    first = next(m for m in smtp_sink.messages if m.rcpt_tos == ["tier1@example.com"])
    dovecot.append(mail(sender="bob@example.com", subject="Re: " + first.message["Subject"], body="#ack\n",
                        in_reply_to=first.message["Message-ID"].strip("<>")))
    before = len(smtp_sink.messages)
    cycle(cli, at + timedelta(minutes=5))
    confirmations = [m for m in smtp_sink.messages[before:] if "Acknowledged by bob@example.com" in str(m.message["Subject"])]
    # one notification, delivered to each group in its own SMTP transaction
    assert len({m.message["Message-ID"] for m in confirmations}) == 1
    assert sorted(r for m in confirmations for r in m.rcpt_tos) == ["tier1@example.com", "tier2@example.com"]
    for later in (30, 60, 240):  # and nobody is reminded any more
        before = len(smtp_sink.messages)
        cycle(cli, at + timedelta(minutes=later))
        assert tier_mails(smtp_sink.messages[before:]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_after_downtime_a_ticket_with_every_rule_holding_gets_one_tier_mail(cli, dovecot: Dovecot,
                                                                           smtp_sink: SmtpSink, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Export is broken for all invoices",
                        body="Every invoice export fails.", date=OPENED.isoformat()))
    cycle(cli, OPENED)  # the ticket is stored; then the daemon is stopped for ten days
    assert smtp_sink.messages == []
    cycle(cli, OPENED + timedelta(days=10))
    sent = tier_mails(smtp_sink.messages)
    assert len(sent) == 1, [m.message["Subject"] for m in sent]
    assert sent[0].rcpt_tos == ["tier3@example.com"]  # where the ladder is now: the highest rule that holds
    body = sent[0].message.get_body(("plain",)).get_content()
    for rule in ("high-no-first-response", "matrix/high/3d"):  # the mail names the rules that hold
        assert rule in body
    # the other mails of that tick are the once-only lead alerts of the rules that fired, no tier mail
    assert all(m.rcpt_tos[0] not in GROUPS for m in smtp_sink.messages if m not in sent)
    before = len(smtp_sink.messages)
    cycle(cli, OPENED + timedelta(days=10, minutes=15))
    assert tier_mails(smtp_sink.messages[before:]) == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_unanswered_normal_ticket_gets_a_ladder_step_every_working_day(cli, dovecot: Dovecot,
                                                                         smtp_sink: SmtpSink, mail):
    """Every severity's unanswered tickets escalate: a normal one (first response 4h on the office
    calendar) reaches tier 1 within its target and climbs a step each working day until its ladder
    ends. Ticked hourly through five working days, Monday to Friday."""
    dovecot.append(mail(sender="carl@customer.example", subject="Invoice address change",
                        body="Please change our invoice address.", date=OPENED.isoformat()))
    steps_by_day: Counter = Counter()
    first_at = None
    for at in list(working_ticks(5))[::4]:  # on the hour
        before = len(smtp_sink.messages)
        cycle(cli, at)
        sent = tier_mails(smtp_sink.messages[before:])
        assert len(sent) <= 1
        if sent:
            first_at = first_at or at
            steps_by_day[at.date()] += 1
    assert show(cli, "T-1")["severity"] == "normal"
    # Monday 08:30 + 4h of working time: by 12:30 Berlin (11:30 UTC); the first hourly tick after it
    assert first_at is not None and first_at <= OPENED + timedelta(hours=5)
    days = sorted(steps_by_day)
    assert len(days) >= 4, steps_by_day  # a step on (nearly) every working day: the last may be the lead's notice
    assert all((later - earlier).days == 1 for earlier, later in zip(days, days[1:])), days


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_mail_that_waited_on_the_server_counts_from_when_it_arrived(cli, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    """The daemon was down for two hours while an urgent mail sat in the mailbox: the ticket's
    clocks start when the server received it (not when escalate got round to it), and the first
    tick sends one tier mail saying where its ladder is now, not the burst of the steps it missed."""
    arrived = OPENED - timedelta(hours=2)
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="502 everywhere.",
                        date=arrived.isoformat()), arrived_at=arrived)
    cycle(cli, OPENED)
    detail = show(cli, "T-1")
    assert detail["created_at"] == arrived.isoformat()
    assert detail["messages"][0]["received_at"] == arrived.isoformat()
    sent = tier_mails(smtp_sink.messages)
    assert len(sent) == 1 and GROUPS[sent[0].rcpt_tos[0]] >= 2  # two hours of an urgent ticket unanswered
    # mail that arrives while the daemon runs keeps the daemon's time (its clocks are not moved)
    dovecot.append(mail(sender="dana@other.example", subject="Invoice question", body="Where is it?",
                        date=arrived.isoformat()))
    cycle(cli, OPENED + timedelta(minutes=5))
    assert show(cli, "T-2")["created_at"] == (OPENED + timedelta(minutes=5)).isoformat()
