"""Business-hours calendars and paused clocks, table-driven: weekends, holidays, DST changes in the
configured time zone, tickets created outside business hours, waiting-on-customer pauses."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
from escalate.rules import TicketFacts, clocks
from escalate.rules.calendar import Calendar, parse_days, parse_span
from escalate.rules.model import Ruleset, Severity, Tier

UTC = timezone.utc
H = timedelta(hours=1)
M = timedelta(minutes=1)
NINE_TO_FIVE = ((540, 1020),)


def berlin(**changes) -> Calendar:
    hours = (NINE_TO_FIVE,) * 5 + ((), ())
    values = dict(name="office", timezone="Europe/Berlin", hours=hours,
                  holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25)}))
    values.update(changes)
    return Calendar(**values)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (what, created at (UTC), business time to add, due at (UTC))
ADD_CASES = [
    ("inside hours, same day", "2026-11-04T09:00", 2 * H, "2026-11-04T11:00"),  # Wed 10:00 CET
    ("runs over the close into the next morning", "2026-11-04T15:00", 2 * H, "2026-11-05T09:00"),
    ("Friday afternoon to Monday: the weekend does not count", "2026-11-06T15:00", 2 * H, "2026-11-09T09:00"),
    ("created on Saturday: the clock starts Monday 09:00", "2026-11-07T12:00", 30 * M, "2026-11-09T08:30"),
    ("created on Tuesday evening: starts Wednesday 09:00", "2026-11-03T19:00", H, "2026-11-04T09:00"),
    ("created before opening: starts at opening", "2026-11-04T05:00", H, "2026-11-04T09:00"),
    ("holidays are skipped (Dec 24 and 25; then the weekend)", "2026-12-23T15:00", 2 * H, "2026-12-28T09:00"),
    ("a whole business day is 8 hours: due at the close", "2026-11-04T08:00", 8 * H, "2026-11-04T16:00"),
    ("spring forward: Monday after the change opens at 07:00 UTC", "2026-03-27T15:00", 4 * H, "2026-03-30T10:00"),
    ("fall back: Monday after the change opens at 08:00 UTC", "2026-10-23T14:00", 4 * H, "2026-10-26T11:00"),
    ("zero time: due at once", "2026-11-07T12:00", timedelta(0), "2026-11-07T12:00"),
]


@pytest.mark.parametrize(("what", "start", "amount", "expected"), ADD_CASES, ids=[c[0] for c in ADD_CASES])
def test_add_business_time(what, start, amount, expected):
    calendar = berlin()
    due = calendar.add(utc(start), amount)
    assert due == utc(expected)
    # and the inverse: exactly `amount` of business time lies between the start and the due time
    assert calendar.business_time(utc(start), due) == amount


@pytest.mark.parametrize(("start", "end", "expected"), [
    ("2026-11-06T16:00", "2026-11-09T09:00", H),  # Fri 17:00 CET close .. Mon 10:00 CET: 1h
    ("2026-11-07T00:00", "2026-11-08T23:59", timedelta(0)),  # a weekend
    ("2026-11-02T00:00", "2026-11-09T00:00", 40 * H),  # a working week
    ("2026-12-21T00:00", "2026-12-28T00:00", 24 * H),  # a week with two holidays
    ("2026-03-23T00:00", "2026-04-06T00:00", 80 * H),  # two weeks around the spring DST change
    ("2026-11-09T10:00", "2026-11-09T09:00", timedelta(0)),  # end before start
])
def test_business_time_between(start, end, expected):
    assert berlin().business_time(utc(start), utc(end)) == expected


def test_split_hours_and_the_always_calendar():
    lunch = berlin(hours=(((480, 720), (780, 1020)),) * 5 + ((), ()))
    # 11:30 CET + 1h of work: 30 minutes before lunch, 30 after it
    assert lunch.add(utc("2026-11-04T10:30"), H) == utc("2026-11-04T12:30")
    always = Calendar.always_open("always", "Europe/Berlin")
    assert always.add(utc("2026-11-07T12:00"), 30 * H) == utc("2026-11-08T18:00")
    assert always.business_time(utc("2026-03-28T12:00"), utc("2026-03-29T12:00")) == 24 * H
    assert not berlin().is_open(utc("2026-11-07T12:00")) and berlin().is_open(utc("2026-11-04T12:00"))
    assert berlin().next_open(utc("2026-11-07T12:00")) == utc("2026-11-09T08:00")


def test_describe_and_parse_helpers():
    assert berlin().describe() == "Mon–Fri 09:00–17:00 (Europe/Berlin), 2 holidays"
    assert parse_span("08:30-12:00") == (510, 720)
    assert parse_days("mon-fri") == [0, 1, 2, 3, 4] and parse_days("weekend") == [5, 6]
    for bad, message in (("9-5", 'expected opening hours like "09:00-17:00", got "9-5"'),
                         ("17:00-09:00", 'opening hours must end after they start, got "17:00-09:00"')):
        with pytest.raises(ValueError, match=message):
            parse_span(bad)
    with pytest.raises(ValueError, match="a day range goes forward"):
        parse_days("fri-mon")


# -- clocks that pause while the ticket waits on the customer -----------------------------------

def _ruleset(calendar: Calendar) -> Ruleset:
    return Ruleset(version=1, source="rules.yaml", timezone="Europe/Berlin", support_address="s@example.com",
                   reference_prefix="T",
                   severities=(Severity("normal", (), 4 * H, 16 * H, True, calendar=calendar.name),),
                   tiers=(Tier(1, "One", "one@example.com", ("a@example.com",), None),), rules=(),
                   calendars=(calendar,))


T0 = utc("2026-11-04T08:00")  # Wednesday 09:00 CET, opening time
FACTS = TicketFacts(status="open", severity="normal", tier=None, created_at=T0, first_response_at=None,
                    last_customer_message_at=T0, last_agent_message_at=None, acknowledged=False)

PAUSE_CASES = [
    ("no pause: 10h of work is Thursday 11:00 CET", {}, "2026-11-05T10:00"),
    ("a 2h wait inside business hours moves the due time 2h",
     {"waiting_periods": ((T0 + H, T0 + 3 * H),)}, "2026-11-05T12:00"),
    ("a wait over the night only costs its business part",
     {"waiting_periods": ((utc("2026-11-04T15:00"), utc("2026-11-05T09:00")),)}, "2026-11-05T12:00"),
    ("a wait that starts after the due time changes nothing",
     {"waiting_periods": ((utc("2026-11-05T11:00"), utc("2026-11-05T13:00")),)}, "2026-11-05T10:00"),
    ("while waiting, the clock has no due time", {"status": "waiting", "waiting_since": T0 + H}, None),
]


@pytest.mark.parametrize(("what", "changes", "expected"), PAUSE_CASES, ids=[c[0] for c in PAUSE_CASES])
def test_paused_clocks(what, changes, expected):
    ruleset = _ruleset(berlin())
    facts = replace(FACTS, **changes)
    due = clocks.due(facts, ruleset, T0, 10 * H)
    assert due == (utc(expected) if expected else None)
    if due is not None:
        assert clocks.elapsed(facts, ruleset, T0, due) == 10 * H


def test_elapsed_leaves_out_the_current_wait():
    ruleset = _ruleset(berlin())
    facts = replace(FACTS, status="waiting", waiting_since=T0 + 2 * H)
    assert clocks.elapsed(facts, ruleset, T0, T0 + 5 * H) == 2 * H
    assert clocks.elapsed(facts, ruleset, T0, T0 + 5 * H, pausable=False) == 5 * H
