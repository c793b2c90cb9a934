"""Durations in rules.yaml: "45s", "30m", "2h", "1d", "1w", "1h30m", "1d 4h".

A bare number is refused: `repeat_every: 30` could mean seconds or minutes, and a support team
should never have to guess which one the daemon picked.

Days and weeks mean what the team means by them: on a calendar with working hours "3d" is three
working days of that calendar, not 72 working hours (calendar.py, Calendar.working). So a parsed
duration keeps its weeks and days apart from its hours, minutes and seconds (Duration); as a plain
timedelta it is its 24×7 meaning (a day is 24 hours), which is what real-time clocks (max_age)
and the "always" calendar use.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from .registry import show

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)\s*([wdhms])")
# The whole text: one or more number+unit parts, optionally separated by spaces.
_WHOLE = re.compile(r"\s*(?:\d+\s*[wdhms]\s*)+")


class Duration(timedelta):
    """A duration from rules.yaml: a timedelta (days of 24 h) that also remembers how many of it
    were written as weeks and days, so a calendar can count those as working days and weeks.

    Scaling keeps the parts apart (`3 * Duration`, used for the nth repeat of an escalation);
    any other arithmetic gives a plain timedelta of the 24×7 meaning.
    """

    weeks_part: int
    days_part: int

    def __new__(cls, weeks: int = 0, days: int = 0, clock: timedelta = timedelta(0)) -> Duration:
        self = super().__new__(cls, weeks=weeks, days=days, seconds=clock.total_seconds())
        self.weeks_part, self.days_part = weeks, days
        return self

    @property
    def clock_part(self) -> timedelta:
        """The hours, minutes and seconds: working time on any calendar."""
        return timedelta(seconds=self.total_seconds()) - timedelta(weeks=self.weeks_part, days=self.days_part)

    @property
    def has_days(self) -> bool:
        return bool(self.weeks_part or self.days_part)

    def __mul__(self, factor: Any) -> Any:
        if isinstance(factor, int) and not isinstance(factor, bool):
            return Duration(self.weeks_part * factor, self.days_part * factor, self.clock_part * factor)
        return super().__mul__(factor)

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        # "7d" and "1w" are the same 24×7 time but not the same working time
        if isinstance(other, Duration):
            return (self.weeks_part, self.days_part, self.clock_part) == (other.weeks_part, other.days_part, other.clock_part)
        return super().__eq__(other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = timedelta.__hash__

    def __reduce__(self) -> tuple[type[Duration], tuple[int, int, timedelta]]:
        return Duration, (self.weeks_part, self.days_part, self.clock_part)

    def __repr__(self) -> str:
        return f"Duration({format_duration(self)!r})"


def parse_duration(text: object) -> Duration:
    """Parse a duration like "1h30m". Raises ValueError with a message fit for a user.

    Units are w, d, h, m, s (lowercase), largest first, each at most once.
    """
    message = f'expected a duration like "30m", got {show(text)}'
    if isinstance(text, bool) or not isinstance(text, str):
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            message += " (a bare number is ambiguous: add a unit, s, m, h, d or w)"
        raise ValueError(message)
    if not _WHOLE.fullmatch(text):
        raise ValueError(message)
    counts = dict.fromkeys(_UNITS, 0)
    order = list(_UNITS)
    last = -1
    for number, unit in _PART.findall(text):
        position = order.index(unit)
        if position <= last:
            raise ValueError(f"{message} (units go largest first, each once: w, d, h, m, s)")
        last = position
        counts[unit] = int(number)
    clock = timedelta(hours=counts["h"], minutes=counts["m"], seconds=counts["s"])
    return Duration(counts["w"], counts["d"], clock)


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration for whole seconds: 5400s -> "1h30m", 0 -> "0s"; a Duration
    as written ("1w", "7d" and "168h" stay what they are: on a working calendar they differ)."""
    if isinstance(value, Duration) and value >= timedelta(0):
        clock = format_duration(value.clock_part) if value.clock_part else ""
        days = (f"{value.weeks_part}w" if value.weeks_part else "") + (f"{value.days_part}d" if value.days_part else "")
        return (days + clock) or "0s"
    seconds = round(value.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        if unit == "w" and seconds % size >= 86400:
            continue  # "30d" reads better than "4w2d": weeks only when what is left is under a day
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


def format_working_time(value: timedelta) -> str:
    """Working time in hours, never days ("50h", "7h30m"), so it cannot be read as working days."""
    seconds = max(round(value.total_seconds()), 0)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "") + (f"{seconds}s" if seconds else "")
    return text or "0s"


def age_text(age: timedelta) -> str:
    """How old something is, as a person reads it before "ago": whole minutes in real time ("2h13m",
    "3d4h"), and "less than a minute" rather than "0s"."""
    minutes = int(age.total_seconds() // 60)
    return format_duration(timedelta(minutes=minutes)) if minutes > 0 else "less than a minute"
