"""Replies from tier members: commands act only with two proofs.

1. The reply answers a notification we really sent: it quotes one of our Message-IDs (or writes
   to its plus-address), that ID's HMAC token verifies for this ticket and tier with the current
   or the previous secret, and the notification is younger than the token lifetime.
2. The sender is on that tier's roster now (From alone is never proof, but without it nothing
   acts). Address parsing in parse.py already refuses the confusable forms.

Commands are read from the top of the new text of the reply only, never from quoted history.
Anything refused is recorded on the ticket and audited; the sender is told at most once an hour,
and only when they are on a tier's roster — never machine mail, a stranger (backscatter to a
forged From), a list, a group or our own address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

from escalate.mail import tokens
from escalate.mail.classify import own_address
from escalate.mail.parse import ParsedMail
from escalate.ops import logs
from escalate.outbound.notify import queue_command_help, queue_confirmation, queue_refusal
from escalate.outbound.templates import Renderer
from escalate.rules.durations import format_duration
from escalate.rules.model import Ruleset, Tier
from escalate.store.batch import Batch, held_lines
from escalate.store.models import Outbox, Ticket
from escalate.tickets import audit
from escalate.tickets.commands import COMMANDS, CommandContext, CommandError, find_commands, is_command_line
from escalate.tickets.lifecycle import TicketStateError

log = logging.getLogger(__name__)

DEFAULT_TOKEN_TTL = timedelta(days=7)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    tier: Tier | None = None


def authorise(parsed: ParsedMail, ticket: Ticket, notification: Outbox | None, ruleset: Ruleset,
              keys: bytes | Iterable[bytes], now: datetime, ttl: timedelta = DEFAULT_TOKEN_TTL) -> Verdict:
    if notification is None:
        return Verdict(False, "the reply does not answer a notification escalate sent")
    if notification.ticket_id != ticket.id:
        return Verdict(False, "the notification answered belongs to another ticket")
    if not notification.tier or not tokens.verify(keys, notification.message_id, ticket.ref, notification.tier):
        return Verdict(False, "the reply token does not verify")
    if now - notification.created_at > ttl:
        return Verdict(False, f"the notification answered is older than the token lifetime ({format_duration(ttl)}); "
                              "reply to a newer one")
    if not parsed.from_addr:
        return Verdict(False, "the sender address cannot be parsed")
    try:
        tier = ruleset.tier(notification.tier)
    except KeyError:
        return Verdict(False, f"tier {notification.tier} no longer exists in the rules")
    if not tier.has_member(parsed.from_addr):
        return Verdict(False, f"{parsed.from_addr} is not on the roster of {tier.name} (tier {tier.level})")
    return Verdict(True, "ok", tier)


def _why_not_told(sender: str | None, ruleset: Ruleset) -> str | None:
    """Why a refusal is not sent to `sender`, or None when it may be. Only someone who could act
    — a member of any tier's roster — is told: a stranger would be backscatter (their From may be
    forged), and a list, a group or our own address would echo it back to the team."""
    if not sender:
        return "the sender address cannot be parsed"
    ours = own_address(sender, ruleset)
    if ours is not None:
        return f"mail {ours}"
    if not ruleset.is_roster_member(sender):
        return "not on any tier's roster"
    return None


def handle_commands(parsed: ParsedMail, ticket: Ticket, notification: Outbox | None, ruleset: Ruleset,
                    renderer: Renderer, secret: bytes, now: datetime, *,
                    previous_secret: bytes | None = None, token_ttl: timedelta = DEFAULT_TOKEN_TTL,
                    batch: Batch | None = None) -> list[str]:
    """Run the commands in a reply if it is authorised; returns the names of the commands run."""
    found = find_commands(parsed.new_text)
    if not found:
        below = [line.strip().split()[0] for line in parsed.new_text.splitlines() if is_command_line(line)]
        if below:  # the member's own words, not the quote: say on the ticket why nothing ran
            audit.record(ticket, now, parsed.from_addr or "unknown", "commands-not-at-top", commands=below[:10],
                         reason="commands count only on the first lines of a reply, before any other text",
                         message_id=parsed.message_id, batch=batch)
        return []
    actor = parsed.from_addr or "unknown"
    keys = [secret] + ([previous_secret] if previous_secret else [])
    verdict = authorise(parsed, ticket, notification, ruleset, keys, now, token_ttl)
    if not verdict.allowed:
        silent = _why_not_told(parsed.from_addr, ruleset)
        audit.record(ticket, now, actor, "command-refused", commands=[c.name for c in found],
                     reason=verdict.reason, message_id=parsed.message_id,
                     **({"not_told": silent} if silent else {}), batch=batch)
        logs.event(log, "reply-refused", ticket=ticket.ref, tier=notification.tier if notification else None,
                   sender=actor, commands=[c.name for c in found], reason=verdict.reason, told=silent is None,
                   held=held_lines(batch))
        if silent is None:  # a team member: told once an hour at most, which ticket and why
            queue_refusal(recipient=parsed.from_addr, commands=[f"#{c.name}" for c in found],
                          reason=verdict.reason, ruleset=ruleset, renderer=renderer, secret=secret, now=now,
                          ref=ticket.ref, batch=batch)
        return []
    done: list[str] = []
    unknown: list[str] = []
    failed: list[str] = []
    for found_command in found:
        known = COMMANDS.get(found_command.name)
        if known is None:
            unknown.append(f"#{found_command.name}")
            audit.record(ticket, now, actor, "command-unknown", command=found_command.name, known=sorted(COMMANDS),
                         batch=batch)
            continue
        context = CommandContext(ticket, actor, now, "mail", ruleset, renderer, secret, found_command.body, batch)
        try:
            action_text = known.run(context, found_command.argument)
        except (CommandError, TicketStateError) as error:
            audit.record(ticket, now, actor, "command-failed", command=found_command.name, reason=str(error),
                         batch=batch)
            failed.append(found_command.name)
            continue
        done.append(found_command.name)
        if found_command.name == "resolve":
            continue  # the resolution notice to every tier told is the confirmation
        queue_confirmation(ticket=ticket, tier=verdict.tier, actor=actor, action_text=action_text,
                           note=found_command.argument if found_command.name != "reply" else "",
                           ruleset=ruleset, renderer=renderer, secret=secret, now=now, batch=batch)
    if done or unknown or failed:
        logs.event(log, "reply-acted", ticket=ticket.ref, tier=verdict.tier.level, sender=actor, commands=done,
                   unknown=unknown or None, failed=failed or None, held=held_lines(batch))
    if unknown:
        queue_command_help(ticket=ticket, recipient=actor, unknown=unknown,
                           commands=[{"usage": c.usage, "description": c.description} for c in COMMANDS.values()],
                           ruleset=ruleset, renderer=renderer, secret=secret, now=now, batch=batch)
    return done
