"""Replies from tier members: commands act only with two proofs (RELIABILITY.md §0.6).

1. The reply answers a notification we really sent: it quotes one of our Message-IDs, and that
   ID's HMAC token verifies for this ticket and tier.
2. The sender is on that tier's roster now (From alone is never proof, but without it nothing acts).

Anything else is recorded on the ticket, refused and audited; the ticket does not change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from . import audit, tokens
from .commands import COMMANDS, CommandContext, find_commands
from .models import Outbox, Ticket
from .notify import queue_confirmation
from .parse import ParsedMail
from .rules.model import Ruleset, Tier
from .templates import Renderer
from .tickets import TicketStateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    tier: Tier | None = None


def authorise(parsed: ParsedMail, ticket: Ticket, notification: Outbox | None, ruleset: Ruleset,
              secret: bytes) -> Verdict:
    if notification is None:
        return Verdict(False, "the reply does not answer a notification escalate sent")
    if notification.ticket_id != ticket.id:
        return Verdict(False, f"the notification answered belongs to another ticket")
    if notification.tier is None or not tokens.verify(secret, notification.message_id, ticket.ref, notification.tier):
        return Verdict(False, "the reply token does not verify")
    if not parsed.from_addr:
        return Verdict(False, "the sender address cannot be parsed")
    try:
        tier = ruleset.tier(notification.tier)
    except KeyError:
        return Verdict(False, f"tier {notification.tier} no longer exists in the rules")
    if not tier.has_member(parsed.from_addr):
        return Verdict(False, f"{parsed.from_addr} is not on the roster of {tier.name} (tier {tier.level})")
    return Verdict(True, "ok", tier)


def handle_commands(parsed: ParsedMail, ticket: Ticket, notification: Outbox | None, ruleset: Ruleset,
                    renderer: Renderer, secret: bytes, now: datetime) -> list[str]:
    """Run the commands in a reply if it is authorised; returns the names of the commands run."""
    found = find_commands(parsed.new_text)
    if not found:
        return []
    actor = parsed.from_addr or "unknown"
    verdict = authorise(parsed, ticket, notification, ruleset, secret)
    if not verdict.allowed:
        audit.record(ticket, now, actor, "command-refused", commands=[name for name, _ in found],
                     reason=verdict.reason, message_id=parsed.message_id)
        log.warning("refused commands from %s on %s: %s", actor, ticket.ref, verdict.reason)
        return []
    done = []
    for name, argument in found:
        known = COMMANDS.get(name)
        if known is None:
            audit.record(ticket, now, actor, "command-unknown", command=name, known=sorted(COMMANDS))
            continue
        try:
            action_text = known.run(CommandContext(ticket, actor, now, "mail"), argument)
        except TicketStateError as error:
            audit.record(ticket, now, actor, "command-failed", command=name, reason=str(error))
            continue
        done.append(name)
        queue_confirmation(ticket=ticket, tier=verdict.tier, actor=actor, action_text=action_text, note=argument,
                           ruleset=ruleset, renderer=renderer, secret=secret, now=now)
    return done
