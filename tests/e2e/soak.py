"""How long the kill-loop tests (marker `chaos`) run, and how they wait.

ESCALATE_SOAK_SCALE multiplies their kills, their mail and their simulated time. 1, the default, is
the bounded form the suite runs: a few kills over a short period, each test asserting how many kills
landed, so that none can pass having killed nothing. `bench/chaos_soak.sh` runs the same tests at a
larger scale (the soak): the same properties, many more kills.

Waits poll their condition at short intervals; a timeout here is only a bound after which the test
fails, never a speed target (the suite also runs in parallel, on a busy machine).
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

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


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.1) -> Any:
    """Poll `check` until it returns something true, and return that; fail naming `what` after
    `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(interval)
