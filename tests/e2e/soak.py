"""How long the kill-loop tests (marker `chaos`) run.

ESCALATE_SOAK_SCALE multiplies their kills, their mail and their simulated time. 1, the default, is
the bounded form the suite runs: a few kills over a short period, each test asserting how many kills
landed, so that none can pass having killed nothing. `bench/chaos_soak.sh` runs the same tests at a
larger scale (the soak): the same properties, many more kills.

They wait with `daemon_process.wait_until`: a condition polled at short intervals, its timeout only a
bound after which the test fails, never a speed target.
"""

from __future__ import annotations

import os

SCALE_VARIABLE = "ESCALATE_SOAK_SCALE"


def _scale() -> int:
    text = os.environ.get(SCALE_VARIABLE, "").strip() or "1"
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{SCALE_VARIABLE}: expected a whole number ≥ 1 (1 = the bounded CI form), got {text!r}")
    return int(text)


SCALE = _scale()


def scaled(count: int) -> int:
    """`count` (what the bounded form does) times the soak scale."""
    return count * SCALE
