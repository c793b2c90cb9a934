"""The "resolution target" a mail states is counted like the engine's clocks: the severity's
calendar (business hours, weekends, holidays, DST) with waits on the customer left out.

The shipped rules.yaml: `high` has an 8h resolution target on the `office` calendar (Europe/Berlin,
Mon–Fri 08:00–18:00, holidays 24–26 Dec); `urgent` has 4h on the always-open calendar.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
from escalate.outbound.notify import ticket_context
from escalate.outbound.templates import Renderer
from escalate.rules.loader import load_ruleset
from escalate.store.models import Ticket

REPO = Path(__file__).resolve().parents[2]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset(REPO / "rules.yaml", template_names=Renderer().names())


# (what, severity, created at (UTC), waits on the customer (UTC), status, stated target (UTC))
CASES = [
    ("inside office hours: the same afternoon", "high", "2026-11-04T09:00", [], "open", "2026-11-04 17:00 UTC"),
    ("Friday afternoon: the weekend does not count", "high", "2026-11-06T15:00", [], "open", "2026-11-09 13:00 UTC"),
    ("created on Saturday: the clock starts Monday 08:00 Berlin", "high", "2026-11-07T12:00", [], "new",
     "2026-11-09 15:00 UTC"),
    ("24-26 Dec are holidays, then the weekend", "high", "2026-12-23T16:00", [], "open", "2026-12-28 14:00 UTC"),
    ("over the end of summer time in Berlin", "high", "2026-10-23T14:00", [], "open", "2026-10-26 13:00 UTC"),
    ("a wait on the customer is left out", "high", "2026-11-04T09:00",
     [["2026-11-04T11:00:00+00:00", "2026-11-05T09:00:00+00:00"]], "open", "2026-11-05 15:00 UTC"),
    ("waiting on the customer now: the clock is paused, no target is stated", "high", "2026-11-04T09:00", [],
     "waiting", None),
    ("an always-open calendar counts the weekend", "urgent", "2026-11-07T12:00", [], "open", "2026-11-07 16:00 UTC"),
]


@pytest.mark.parametrize(("what", "severity", "created", "waits", "status", "expected"), CASES, ids=[c[0] for c in CASES])
def test_the_stated_resolution_target_is_in_the_severitys_business_time(ruleset, what, severity, created, waits,
                                                                        status, expected):
    at = utc(created)
    ticket = Ticket(ref="T-1", subject="Checkout down", requester="carl@customer.example", status=status,
                    severity=severity, created_at=at, updated_at=at, waiting_periods=waits,
                    waiting_since=utc("2026-11-04T10:00") if status == "waiting" else None, message_count=1)
    context = ticket_context(ticket, ruleset, now=at)
    assert context["resolution_due_at"] == expected
