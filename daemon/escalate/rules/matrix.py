"""The decision matrix: severity × time on one clock → tier, written compactly in rules.yaml.

    matrix:
      clock: unresolved          # unresolved | no_first_response | no_update
      after: [30m, 2h, 8h, 1d]   # business time of the severity's calendar
      rows:
        urgent: [1, 2, 3, 3]
        high:   [-, 1, 2, 3]     # "-": no escalation yet at that time

Each cell where the tier changes along a row becomes a rule named "matrix/urgent/2h", so the
printed matrix and the running rules cannot differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from escalate.rules.durations import format_duration
from escalate.rules.model import BoundCriterion, Rule
from escalate.rules.registry import lookup

# matrix clock -> the criterion that counts it
MATRIX_CLOCKS = {"unresolved": "unresolved_for", "no_first_response": "no_first_response_for",
                 "no_update": "no_update_for"}


@dataclass(frozen=True)
class Matrix:
    clock: str
    after: tuple[timedelta, ...]
    rows: tuple[tuple[str, tuple[int | None, ...], int], ...]  # (severity, levels per column, line)
    repeat_every: timedelta | None
    line: int

    def as_table(self) -> dict[str, Any]:
        """{"clock": …, "after": ["30m", …], "rows": [{"severity": …, "tiers": [1, None, …]}]}"""
        return {"clock": self.clock, "after": [format_duration(a) for a in self.after],
                "repeat_every": format_duration(self.repeat_every) if self.repeat_every else None,
                "rows": [{"severity": name, "tiers": list(levels)} for name, levels, _line in self.rows]}


def matrix_rules(matrix: Matrix) -> list[Rule]:
    """One rule per cell where a row's tier changes (a row of only "-" yields none)."""
    criterion_name = MATRIX_CLOCKS[matrix.clock]
    severity_criterion = lookup("severity")
    clock_criterion = lookup(criterion_name)
    rules = []
    for severity, levels, line in matrix.rows:
        previous = None
        for after, level in zip(matrix.after, levels):
            if level is None or level == previous:
                previous = level if level is not None else previous
                continue
            previous = level
            rules.append(Rule(
                name=f"matrix/{severity}/{format_duration(after)}",
                description=f"Decision matrix: {severity} tickets {clock_criterion.describe(after)} go to tier {level}.",
                criteria=(BoundCriterion("severity", (severity,), severity_criterion),
                          BoundCriterion(criterion_name, after, clock_criterion)),
                escalate_to=level, repeat_every=matrix.repeat_every, next_tier_after=None,
                template="escalation", line=line, source="matrix",
            ))
    return rules
