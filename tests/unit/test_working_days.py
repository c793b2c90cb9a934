"""Days and weeks are working days and weeks of a calendar with working hours ("3d" from Monday
10:00 is Thursday 10:00), 24 h and 7 × 24 h on the 24×7 calendar; hours stay working time.
Across weekends, holidays and both daylight-saving changes in Europe/Berlin and America/New_York."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta, timezone

import pytest
from escalate.rules import TicketFacts, clocks, load_ruleset
from escalate.rules.calendar import Calendar
from escalate.rules.durations import Duration, format_duration, parse_duration

from tests.conftest import REPO

UTC = timezone.utc
H = timedelta(hours=1)
WEEKDAYS_ONLY = ((),) * 2  # Saturday and Sunday closed
OFFICE = Calendar(name="office", timezone="Europe/Berlin", hours=(((480, 1080),),) * 5 + WEEKDAYS_ONLY,
                  holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)}))
NEW_YORK = Calendar(name="ny", timezone="America/New_York", hours=(((540, 1020),),) * 5 + WEEKDAYS_ONLY)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (what, calendar, start (UTC), duration, due (UTC)); local times in the comments
CASES = [
    ("3d from Monday 10:00 is Thursday 10:00", OFFICE, "2026-11-02T09:00", "3d", "2026-11-05T09:00"),
    ("1d from Friday 16:00 is Monday 16:00", OFFICE, "2026-11-06T15:00", "1d", "2026-11-09T15:00"),
    ("1w from Monday 10:00 is next Monday 10:00", OFFICE, "2026-11-02T09:00", "1w", "2026-11-09T09:00"),
    ("2d from Thursday 10:00 is Monday 10:00", OFFICE, "2026-11-05T09:00", "2d", "2026-11-09T09:00"),
    # Wed 23 Dec 10:00 CET; 24, 25, 26 Dec are holidays, then the weekend
    ("holidays are skipped: 1d from 23 Dec is 28 Dec", OFFICE, "2026-12-23T09:00", "1d", "2026-12-28T09:00"),
    ("a day and hours: Monday 17:00 + 1d 2h is Wednesday 09:00", OFFICE, "2026-11-02T16:00", "1d 2h", "2026-11-04T08:00"),
    ("opened on Saturday: 1d is Monday's close", OFFICE, "2026-11-07T11:00", "1d", "2026-11-09T17:00"),
    ("hours are working time: 48h is almost five working days", OFFICE, "2026-11-02T09:00", "48h", "2026-11-06T17:00"),
    # Berlin goes to summer time on Sunday 29 March 2026: Friday 16:00 CET → Monday 16:00 CEST
    ("Berlin spring forward", OFFICE, "2026-03-27T15:00", "1d", "2026-03-30T14:00"),
    # and back on Sunday 25 October: Friday 16:00 CEST → Monday 16:00 CET
    ("Berlin fall back", OFFICE, "2026-10-23T14:00", "1d", "2026-10-26T15:00"),
    # New York: summer time from Sunday 8 March 2026, Friday 10:00 EST → Tuesday 10:00 EDT
    ("New York spring forward", NEW_YORK, "2026-03-06T15:00", "2d", "2026-03-10T14:00"),
    # winter time from Sunday 1 November: Friday 10:00 EDT → Tuesday 10:00 EST
    ("New York fall back", NEW_YORK, "2026-10-30T14:00", "2d", "2026-11-03T15:00"),
    ("New York week across the change", NEW_YORK, "2026-10-28T14:00", "1w", "2026-11-04T15:00"),
    ("24×7: a day is 24 hours", Calendar.always_open("always", "Europe/Berlin"), "2026-11-07T11:00", "1d", "2026-11-08T11:00"),
    ("24×7: a week is 7 days across DST", Calendar.always_open("always", "Europe/Berlin"), "2026-10-22T11:00", "1w", "2026-10-29T11:00"),
]


@pytest.mark.parametrize(("what", "calendar", "start", "amount", "expected"), CASES, ids=[c[0] for c in CASES])
def test_days_and_weeks_are_working_days(what, calendar, start, amount, expected):
    duration = parse_duration(amount)
    due = calendar.add(utc(start), duration)
    assert due == utc(expected)
    # the clock counts exactly the duration's working time between the two
    assert calendar.business_time(utc(start), due) == calendar.working(duration)


def test_lengths_of_a_working_day_and_week():
    assert (OFFICE.day_length, OFFICE.week_length) == (10 * H, 50 * H)
    # uneven days: a day is the usual open day (Mon–Thu 8 h), the week all of it (38 h)
    short_friday = replace(OFFICE, hours=(((540, 1020),),) * 4 + (((540, 900),),) + WEEKDAYS_ONLY)
    assert (short_friday.day_length, short_friday.week_length) == (8 * H, 38 * H)
    assert OFFICE.working(parse_duration("1w 2d 3h")) == 73 * H
    assert OFFICE.working(timedelta(days=1)) == 24 * H  # a plain timedelta is taken as it is
    always = Calendar.always_open()
    assert always.working(parse_duration("1w 1d")) == timedelta(days=8)


def test_duration_keeps_days_apart_and_reads_as_24x7():
    duration = parse_duration("1w 2d 3h")
    assert isinstance(duration, Duration) and (duration.weeks_part, duration.days_part) == (1, 2)
    assert duration.clock_part == 3 * H
    assert duration == timedelta(days=9, hours=3)  # as a timedelta: the 24×7 meaning (max_age)
    assert format_duration(duration) == "1w2d3h" and format_duration(parse_duration("7d")) == "7d"
    assert parse_duration("7d") != parse_duration("1w")  # 7 working days are not a working week
    tripled = 3 * parse_duration("1d 1h")
    assert isinstance(tripled, Duration) and (tripled.days_part, tripled.clock_part) == (3, 3 * H)


def test_repeats_of_a_day_step_in_working_days():
    """`repeat_every: 1d` as the engine counts repeats: the nth step is n working days on, and
    working time since the start, divided by the calendar's working day, counts the steps due."""
    start = utc("2026-11-02T09:00")  # Monday 10:00 CET
    every_day = parse_duration("1d")
    assert OFFICE.add(start, 3 * every_day) == utc("2026-11-05T09:00")  # Thursday 10:00
    assert OFFICE.add(OFFICE.add(start, every_day), every_day) == OFFICE.add(start, 2 * every_day)
    steps = lambda now: int(OFFICE.business_time(start, now) / OFFICE.working(every_day))  # noqa: E731
    assert (steps(utc("2026-11-05T09:00")), steps(utc("2026-11-05T08:59"))) == (3, 2)


def _facts(**changes) -> TicketFacts:
    values = dict(status="open", severity="normal", tier=None, created_at=utc("2026-11-06T15:00"),
                  first_response_at=None, last_customer_message_at=utc("2026-11-06T15:00"),
                  last_agent_message_at=None, acknowledged=False)
    values.update(changes)
    return TicketFacts(**values)


def test_shipped_rule_no_update_for_1d_from_friday_1600_is_monday_1600():
    ruleset = load_ruleset(REPO / "rules.yaml")
    rule = next(r for r in ruleset.rules if any(b.name == "no_update_for" and b.value == parse_duration("1d")
                                                 for b in r.criteria))
    bound = next(b for b in rule.criteria if b.name == "no_update_for")
    # a normal ticket (calendar office, Mon–Fri 08:00–18:00 Europe/Berlin) opened Friday 16:00 CET
    assert bound.holds_from(_facts(), ruleset) == utc("2026-11-09T15:00")  # Monday 16:00 CET
    # the shipped normal severity's resolution target, 2d: Monday 10:00 CET → Wednesday 10:00 CET
    monday = utc("2026-11-02T09:00")
    facts = _facts(created_at=monday, last_customer_message_at=monday)
    assert clocks.due(facts, ruleset, monday, ruleset.severity("normal").resolution) == utc("2026-11-04T09:00")


def test_a_wait_on_the_customer_pauses_a_working_day():
    ruleset = load_ruleset(REPO / "rules.yaml")
    monday = utc("2026-11-02T09:00")  # 10:00 CET; the ticket waited Monday 12:00 to Tuesday 12:00 CET
    facts = _facts(created_at=monday, last_customer_message_at=monday,
                   waiting_periods=((utc("2026-11-02T11:00"), utc("2026-11-03T11:00")),))
    # 2h counted before the wait, the other 8h of the working day from Tuesday 12:00: Wednesday 10:00
    assert clocks.due(facts, ruleset, monday, parse_duration("1d")) == utc("2026-11-04T09:00")
