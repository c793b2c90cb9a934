"""How a person reads a time and an age: the team's zone with its abbreviation (or offset), and no
"0s ago"."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from escalate import clock
from escalate.rules.durations import age_text, format_working_time

WINTER, SUMMER = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc), datetime(2026, 7, 6, 9, 0, tzinfo=timezone.utc)


def test_times_in_the_teams_zone_carry_its_abbreviation():
    assert clock.shown(WINTER) == "2026-11-02 09:00 UTC"  # before any rules are loaded
    clock.set_display_zone("Europe/Berlin")
    assert (clock.shown(WINTER), clock.shown(SUMMER)) == ("2026-11-02 10:00 CET", "2026-07-06 11:00 CEST")
    clock.set_display_zone("America/New_York")
    assert (clock.shown(WINTER), clock.shown(SUMMER)) == ("2026-11-02 04:00 EST", "2026-07-06 05:00 EDT")
    # the night the clocks go back: 05:30 and 06:30 UTC are both 01:30 in New York, told apart by the zone
    assert clock.shown(datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc)) == "2026-11-01 01:30 EDT"
    assert clock.shown(datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc)) == "2026-11-01 01:30 EST"
    clock.set_display_zone("Asia/Dubai")  # tzdata writes its abbreviation as an offset
    assert clock.shown(WINTER) == "2026-11-02 13:00 +04"
    assert clock.shown_iso("2026-11-02T09:00:00+00:00") == "2026-11-02 13:00 +04" and clock.shown_iso(None) == "-"
    clock.set_display_zone(None)


def test_ages_and_working_time_read_plainly():
    assert age_text(timedelta(seconds=0)) == age_text(timedelta(seconds=59)) == "less than a minute"
    assert age_text(timedelta(hours=2, minutes=13, seconds=40)) == "2h13m"
    assert age_text(timedelta(days=3, hours=4)) == "3d4h"  # real time: a day is 24 hours
    assert format_working_time(timedelta(hours=50)) == "50h"  # never "2d2h", which would read as working days
    assert format_working_time(timedelta(hours=7, minutes=30)) == "7h30m" and format_working_time(timedelta(0)) == "0s"
