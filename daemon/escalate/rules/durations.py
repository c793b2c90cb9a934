"""Durations in rules.yaml: "45s", "30m", "2h", "1d", "1w", "1h30m", "1d 4h".

A bare number is refused: `repeat_every: 30` could mean seconds or minutes, and a support team
should never have to guess which one the daemon picked.
"""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)\s*([wdhms])")
# The whole text: one or more number+unit parts, optionally separated by spaces.
_WHOLE = re.compile(r"\s*(?:\d+\s*[wdhms]\s*)+")


def _show(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    return str(value)


def parse_duration(text: object) -> timedelta:
    """Parse a duration like "1h30m". Raises ValueError with a message fit for a user.

    Units are w, d, h, m, s (lowercase), largest first, each at most once.
    """
    message = f'expected a duration like "30m", got {_show(text)}'
    if isinstance(text, bool) or not isinstance(text, str):
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            message += " (a bare number is ambiguous: add a unit, s, m, h, d or w)"
        raise ValueError(message)
    if not _WHOLE.fullmatch(text):
        raise ValueError(message)
    seconds = 0
    order = list(_UNITS)
    last = -1
    for number, unit in _PART.findall(text):
        position = order.index(unit)
        if position <= last:
            raise ValueError(f"{message} (units go largest first, each once: w, d, h, m, s)")
        last = position
        seconds += int(number) * _UNITS[unit]
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration for whole seconds: 5400s -> "1h30m", 0 -> "0s"."""
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
