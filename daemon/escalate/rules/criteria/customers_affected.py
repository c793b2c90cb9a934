"""customers_affected: the ticket's incident has at least N distinct customers.

Similar tickets from distinct senders within the incident window are linked under one incident
(escalate.tickets.incidents). This criterion holds only on the incident's primary ticket, from the moment
the Nth customer joined, so a rule using it escalates the incident once, not every ticket in it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from escalate.rules.registry import criterion, show

if TYPE_CHECKING:
    from escalate.rules.facts import TicketFacts
    from escalate.rules.model import Ruleset

MAX_CUSTOMERS = 1000  # rules.sanity probes incidents of this size


@criterion("customers_affected", "The ticket's incident has at least this many distinct customers.")
class CustomersAffected:
    timed = False

    def parse(self, value: object) -> Any:
        if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= MAX_CUSTOMERS:
            raise ValueError(f"expected a number of customers from 2 to {MAX_CUSTOMERS}, got {show(value)}")
        return value

    def check(self, count: Any, ruleset: Ruleset) -> Iterator[str]:
        if ruleset.incidents is None:
            yield "needs an incidents: section (window, similarity) to group similar tickets"

    def holds_from(self, facts: TicketFacts, count: int, ruleset: Ruleset) -> datetime | None:
        if facts.is_done or not facts.incident_primary or len(facts.incident_joins) < count:
            return None
        return facts.incident_joins[count - 1]

    def describe(self, count: Any) -> str:
        return f"{count} or more customers affected"
