"""`rules check`'s note on days and weeks: where a rules file's "d" and "w" changed meaning.

Days and weeks used to be 24 and 168 hours of a calendar's working time; on a calendar with
working hours they are now working days and weeks of it (calendar.py). A file written for the old
meaning escalates sooner now ("2d" on Mon–Fri 08:00–18:00 was 48 working hours, almost five
working days; it is now two), so the admin is told where, with both readings.
"""

from __future__ import annotations

from datetime import timedelta

from escalate.rules.calendar import Calendar
from escalate.rules.durations import Duration, format_duration, format_working_time
from escalate.rules.model import Ruleset

_TARGETS = ("first_response", "next_response", "resolution")
_REAL_TIME = {"max_age"}  # counted in real time: a day is 24 hours as before


def _working_calendars(ruleset: Ruleset) -> dict[str, Calendar]:
    """Each severity's calendar that has working hours."""
    return {s.name: ruleset.calendar(s.calendar) for s in ruleset.severities
            if not ruleset.calendar(s.calendar).always}


def _reading(amount: Duration, calendar: Calendar) -> str:
    old = timedelta(seconds=amount.total_seconds())
    return (f"{format_duration(amount)} on {calendar.name} is now {format_working_time(calendar.working(amount))} "
            f"of working time (was {format_working_time(old)})")


def changed_meanings(ruleset: Ruleset) -> list[str]:
    """One note per duration with days or weeks that a calendar with working hours counts."""
    calendars = _working_calendars(ruleset)
    if not calendars:
        return []
    notes = []
    for severity in ruleset.severities:
        calendar = calendars.get(severity.name)
        for target in _TARGETS:
            amount = getattr(severity, target)
            if calendar is not None and isinstance(amount, Duration) and amount.has_days:
                notes.append(f"severity {severity.name}, {target}: {_reading(amount, calendar)}")
    for rule in ruleset.rules:
        severities = next((b.value for b in rule.criteria if b.name == "severity"), tuple(calendars))
        counted = {calendars[name].name: calendars[name] for name in severities if name in calendars}
        amounts = [(bound.name, bound.value) for bound in rule.criteria if bound.name not in _REAL_TIME]
        amounts.append(("repeat_every", rule.repeat_every))
        for name, amount in amounts:
            if isinstance(amount, Duration) and amount.has_days:
                notes += [f"rule {rule.name}, {name}: {_reading(amount, calendar)}" for calendar in counted.values()]
    return notes


def note_text(ruleset: Ruleset) -> list[str]:
    """The lines `rules check` prints, or none when nothing changed meaning."""
    notes = changed_meanings(ruleset)
    if not notes:
        return []
    return (["note: days (d) and weeks (w) now count working days and weeks of a severity's calendar, "
             "as people and Jira Service Management do (\"3d\" from Monday 10:00 is Thursday 10:00); "
             "they used to be 24 and 168 hours of working time. Check these still say what you mean:"]
            + [f"  {note}" for note in notes])
