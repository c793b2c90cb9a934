"""Business-hours calendars: when the support team works, and clocks that run only then.

A calendar is a week of opening hours in an IANA time zone plus holidays, or "always" (24×7).
All arithmetic is on aware UTC datetimes; each local day's opening hours are converted to UTC
through the time zone, so a clock stays exact across a DST change (a 09:00–17:00 day is 8 hours
long on the Monday after the clocks go forward, and starts an hour earlier in UTC).

    cal.business_time(start, end)   how much working time lies between two moments
    cal.add(start, amount)          the moment working time since `start` reaches `amount`
    cal.working(amount)             a rules.yaml duration as working time of this calendar

Days and weeks are the team's: on a calendar with working hours a day ("1d") is one working day
of it — as long as its usual open day (10 h for Mon–Fri 08:00–18:00) — and a week ("1w") its
whole working week (50 h there), so "3d" from Monday 10:00 is Thursday 10:00, holidays and
weekends skipped, and "1d" from Friday 16:00 is Monday 16:00. On the 24×7 calendar a day is 24 h.
Hours, minutes and seconds are working time on every calendar. (Jira Service Management and
people count the same way; counting 24 working hours as a day made "2d" almost a working week.)

The engine stores `add(...)` as the ticket's next due time, so a tick still reads only due tickets.
"""

from __future__ import annotations

import zoneinfo
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from escalate.rules.durations import Duration

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_NAME = "always"
# A calendar with some opening hours reaches any amount within this many days of search; the
# loader refuses calendars without opening hours, so this only bounds a pathological holiday list.
_SEARCH_DAYS = 3 * 366
_ZERO = timedelta(0)

Span = tuple[int, int]  # minutes after local midnight: (540, 1020) is 09:00–17:00; 1440 is 24:00


@dataclass(frozen=True)
class Calendar:
    name: str
    timezone: str  # IANA name
    hours: tuple[tuple[Span, ...], ...] = ()  # seven entries, Monday first; () with always=True
    holidays: frozenset[date] = frozenset()
    always: bool = False
    _zone: zoneinfo.ZoneInfo = field(init=False, repr=False, compare=False)
    _days: dict[date, tuple[tuple[datetime, datetime], ...]] = field(init=False, repr=False, compare=False, hash=False)
    _lengths: tuple[timedelta, timedelta] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_zone", zoneinfo.ZoneInfo(self.timezone))
        object.__setattr__(self, "_days", {})
        object.__setattr__(self, "_lengths", self._day_and_week())

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return self._zone

    @classmethod
    def always_open(cls, name: str = ALWAYS_NAME, timezone_name: str = "UTC") -> Calendar:
        return cls(name=name, timezone=timezone_name, always=True)

    # -- one local day -----------------------------------------------------------------------

    def intervals_on(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The opening hours of local date `day` as UTC (start, end) pairs, in order."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        spans = () if day in self.holidays else self.hours[day.weekday()]
        result = tuple((self._utc(day, start), self._utc(day, end)) for start, end in spans)
        if len(self._days) > 20_000:  # a long simulation walks many days; keep memory bounded
            self._days.clear()
        self._days[day] = result
        return result

    def _utc(self, day: date, minutes: int) -> datetime:
        if minutes >= 1440:
            day, minutes = day + timedelta(days=1), minutes - 1440
        local = datetime.combine(day, time(minutes // 60, minutes % 60), tzinfo=self._zone)
        return local.astimezone(timezone.utc)

    def _local_date(self, moment: datetime) -> date:
        return moment.astimezone(self._zone).date()

    # -- clocks ------------------------------------------------------------------------------

    def is_open(self, moment: datetime) -> bool:
        if self.always:
            return True
        return any(start <= moment < end for start, end in self.intervals_on(self._local_date(moment)))

    def business_time(self, start: datetime, end: datetime) -> timedelta:
        """Working time between `start` and `end` (zero when end <= start)."""
        if end <= start:
            return _ZERO
        if self.always:
            return end - start
        total = _ZERO
        day = self._local_date(start) - timedelta(days=1)  # a span may begin on the previous local day
        last = self._local_date(end)
        while day <= last:
            for open_at, close_at in self.intervals_on(day):
                lo, hi = max(open_at, start), min(close_at, end)
                if hi > lo:
                    total += hi - lo
            day += timedelta(days=1)
        return total

    # -- days and weeks ----------------------------------------------------------------------

    @property
    def day_length(self) -> timedelta:
        """How long a working day ("1d") is: the most common length of an open day of the week,
        the longer one on a tie (Mon–Thu 09:00–17:00, Fri 09:00–15:00: 8 h). 24 h for 24×7."""
        return self._lengths[0]

    @property
    def week_length(self) -> timedelta:
        """How long a working week ("1w") is: all the opening hours of a week. 7 × 24 h for 24×7."""
        return self._lengths[1]

    def _day_and_week(self) -> tuple[timedelta, timedelta]:
        open_days = [sum(end - start for start, end in spans) for spans in self.hours if spans]
        if self.always or not open_days:  # the loader refuses a calendar without opening hours
            return timedelta(days=1), timedelta(weeks=1)
        usual = max(Counter(open_days).items(), key=lambda item: (item[1], item[0]))[0]
        return timedelta(minutes=usual), timedelta(minutes=sum(open_days))

    def working(self, amount: timedelta) -> timedelta:
        """`amount` as working time of this calendar: a Duration's days and weeks become working
        days and weeks; any other timedelta (and anything on 24×7) is taken as it is."""
        if self.always or not isinstance(amount, Duration) or not amount.has_days:
            return timedelta(seconds=amount.total_seconds())
        return amount.weeks_part * self.week_length + amount.days_part * self.day_length + amount.clock_part

    def add(self, start: datetime, amount: timedelta) -> datetime:
        """The first moment at which working time since `start` reaches `amount` (a Duration's
        days and weeks counted as this calendar's working days and weeks)."""
        amount = self.working(amount)
        if self.always or amount <= _ZERO:
            return start + max(amount, _ZERO)
        remaining = amount
        day = self._local_date(start) - timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            for open_at, close_at in self.intervals_on(day):
                if close_at <= start:
                    continue
                begin = max(open_at, start)
                available = close_at - begin
                if available >= remaining:
                    return begin + remaining
                remaining -= available
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name} has no working time within {_SEARCH_DAYS} days of {start}")

    def next_open(self, moment: datetime) -> datetime:
        """`moment` if the calendar is open then, else when it next opens."""
        if self.always:
            return moment
        day = self._local_date(moment) - timedelta(days=1)
        for _ in range(_SEARCH_DAYS):
            for open_at, close_at in self.intervals_on(day):
                if close_at > moment:
                    return max(open_at, moment)
            day += timedelta(days=1)
        raise ValueError(f"calendar {self.name} never opens after {moment}")

    def describe(self) -> str:
        """"Mon–Fri 09:00–17:00 (Europe/Berlin), 2 holidays" or "24×7"."""
        if self.always:
            return "24×7"
        groups: list[tuple[int, int, tuple[Span, ...]]] = []
        for index, spans in enumerate(self.hours):
            if groups and groups[-1][2] == spans and groups[-1][1] == index - 1:
                groups[-1] = (groups[-1][0], index, spans)
            else:
                groups.append((index, index, spans))
        parts = []
        for first, last, spans in groups:
            if not spans:
                continue
            days = WEEKDAYS[first].capitalize() + ("" if first == last else "–" + WEEKDAYS[last].capitalize())
            parts.append(days + " " + ", ".join(f"{_hhmm(s)}–{_hhmm(e)}" for s, e in spans))
        text = "; ".join(parts) + f" ({self.timezone})"
        if self.holidays:
            text += f", {len(self.holidays)} holiday{'s' if len(self.holidays) != 1 else ''}"
        return text


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_span(text: str) -> Span:
    """"09:00-17:00" -> (540, 1020). ValueError with a message for a user."""
    message = f'expected opening hours like "09:00-17:00", got "{text}"'
    parts = text.replace("–", "-").split("-")
    if len(parts) != 2:
        raise ValueError(message)
    minutes = []
    for part in parts:
        hour, sep, minute = part.strip().partition(":")
        if not sep or not hour.isdigit() or not minute.isdigit() or len(minute) != 2:
            raise ValueError(message)
        value = int(hour) * 60 + int(minute)
        if int(minute) > 59 or value > 1440:
            raise ValueError(message)
        minutes.append(value)
    if minutes[1] <= minutes[0]:
        raise ValueError(f'opening hours must end after they start, got "{text}"')
    return minutes[0], minutes[1]


def parse_days(text: str) -> list[int]:
    """"mon-fri" -> [0..4], "sat" -> [5], "daily" -> all. ValueError names the known days."""
    word = text.strip().lower()
    if word in ("daily", "every day"):
        return list(range(7))
    if word in ("weekdays",):
        return list(range(5))
    if word in ("weekend", "weekends"):
        return [5, 6]
    first, sep, last = word.partition("-")
    if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
        raise ValueError(f'expected a day like "mon" or a range like "mon-fri", got "{text}" '
                         f"(days: {', '.join(WEEKDAYS)}, weekdays, weekend, daily)")
    start = WEEKDAYS.index(first)
    end = WEEKDAYS.index(last) if sep else start
    if end < start:
        raise ValueError(f'a day range goes forward through the week (mon-fri, not fri-mon), got "{text}"')
    return list(range(start, end + 1))
