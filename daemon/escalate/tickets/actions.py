"""The ticket actions from the CLI (`escalate tickets ack REF --as ADDRESS`, …): the mail commands'
own functions, with the roster check a mail reply gets.

A reply acts only when its sender is on the roster of the tier the answered notification went to.
The CLI answers no notification, so `--as ADDRESS` must be on the roster of a tier the ticket was
notified at (of any tier while it has not been notified yet). Someone else is refused before
anything is written, unless the admin says --force: then the action is done as ADDRESS and an
`admin-override` event records who forced it, for whom and why it would have been refused.
Without --as the actor is the admin's own login (cli:USER), which no roster lists and none is asked.
"""

from __future__ import annotations

import getpass
from datetime import datetime
from typing import Any

from escalate.reports import queries
from escalate.rules.model import Ruleset
from escalate.store.db import write_transaction
from escalate.store.models import Outbox, Ticket
from escalate.tickets import audit, commands
from escalate.tickets.commands import CommandContext
from escalate.errors import InputError


class NotOnRoster(InputError, ValueError):
    """`--as ADDRESS` names someone a mail reply would refuse; the message says what to do."""


def admin() -> str:
    """The person at the terminal, as the audit trail names them."""
    return f"cli:{getpass.getuser()}"


def roster_problem(ticket: Ticket, address: str, ruleset: Ruleset) -> str | None:
    """Why a reply from `address` could not act on `ticket`, or None when it could."""
    notified = sorted({tier for (tier,) in Outbox.select(Outbox.tier).where(
        (Outbox.ticket == ticket) & Outbox.tier.is_null(False)).tuples()})
    tiers = [t for t in ruleset.tiers if t.level in notified] or list(ruleset.tiers)
    if any(tier.has_member(address) for tier in tiers):
        return None
    where = ", ".join(f"{t.name} (tier {t.level})" for t in tiers)
    return f"{address} is not on the roster of {where}" + (f", the tiers {ticket.ref} was escalated to"
                                                            if notified else "")


def act(name: str, ref: str, as_address: str | None, argument: str, body: str, *, ruleset: Ruleset, renderer: Any,
        secret: bytes, now: datetime, force: bool = False) -> dict[str, Any]:
    """Run mail command `name` on ticket `ref` in one transaction; returns what was done (the
    `--json` of every ticket action). NotOnRoster when `as_address` may not act and not `force`."""
    actor = as_address or admin()
    with write_transaction():
        ticket = queries.get_ticket(ref)
        problem = roster_problem(ticket, as_address, ruleset) if as_address else None
        if problem and not force:
            raise NotOnRoster(f"{problem}: a reply from them would be refused; "
                              "--force acts anyway, recorded as an admin override")
        if problem:
            audit.record(ticket, now, admin(), "admin-override", command=name, acting_as=as_address, reason=problem)
        context = CommandContext(ticket, actor, now, "cli", ruleset, renderer, secret, body)
        done = commands.run(name, context, argument)
    return {"ref": ticket.ref, "command": name, "done": done, "actor": actor, "status": ticket.status,
            "override": {"by": admin(), "reason": problem} if problem else None}


def describe(result: dict[str, Any]) -> str:
    line = f"{result['ref']} {result['done']} by {result['actor']}; status {result['status']}"
    if result["override"]:
        line += f" (admin override by {result['override']['by']}, recorded in the audit trail)"
    return line
