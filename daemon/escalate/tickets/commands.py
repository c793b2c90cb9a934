"""Mail commands a tier member can put in a reply, found by name.

Each command is one small function registered with `@command`; adding one is adding a function.
The same functions serve the CLI (`escalate tickets ack REF`), so both leave the same audit trail.
A command is a line of the reply's *new* text that starts with `#word`, and commands count only at
the top of the reply, before anything else the person wrote: "Thanks, looking at it." followed by
a quote whose header no detector knows must never run the commands quoted below it. The lines
after a command that takes text (`#note`, `#reply`, `#escalate`), up to the next command, are its
body; after any other command, the first line of plain text ends the commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable

from escalate.rules.durations import format_duration, parse_duration
from escalate.store.models import Ticket
from escalate.tickets import audit
from escalate.tickets import lifecycle as tickets
from escalate.tickets.lifecycle import TicketStateError

if TYPE_CHECKING:  # the mail-sending commands need these; the CLI passes them too
    from escalate.outbound.templates import Renderer
    from escalate.rules.model import Ruleset
    from escalate.store.batch import Batch

MAX_SNOOZE = timedelta(days=7)
ESCALATION_FIELDS = ("impact", "tried", "needed", "deadline")


class CommandError(TicketStateError):
    """The command cannot be applied as written; the message says what to write instead."""


@dataclass(frozen=True)
class CommandContext:
    ticket: Ticket
    actor: str
    now: datetime
    via: str  # "mail" or "cli"
    ruleset: Ruleset | None = None
    renderer: Renderer | None = None
    secret: bytes | None = None
    body: str = ""  # the lines after the command line, up to the next command
    batch: Batch | None = None  # the ingest batch's: its audit events are written with the batch's


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    description: str
    run: Callable[[CommandContext, str], str]  # returns what happened, for the confirmation ("acknowledged")
    takes_body: bool = False  # the lines below the command are its text (#note, #reply, #escalate)


@dataclass(frozen=True)
class FoundCommand:
    name: str
    argument: str
    body: str


COMMANDS: dict[str, Command] = {}

_COMMAND_LINE = re.compile(r"^\s*#([A-Za-z][A-Za-z-]*)\b[ \t]*(.*?)\s*$")


def command(name: str, usage: str, description: str, *, takes_body: bool = False):
    def register(function: Callable[[CommandContext, str], str]) -> Callable[[CommandContext, str], str]:
        COMMANDS[name] = Command(name, usage, description, function, takes_body)
        return function
    return register


def find_commands(new_text: str) -> list[FoundCommand]:
    """The commands at the top of the text a person just wrote, each with the lines that follow it.

    The first line with text must be a command, or there are none; a command that takes no text
    ends the commands at the next line of plain text (blank lines between commands are fine)."""
    found: list[FoundCommand] = []
    body: list[str] = []
    for line in new_text.splitlines():
        match = _COMMAND_LINE.match(line)
        if match:
            if found:
                found[-1] = FoundCommand(found[-1].name, found[-1].argument, "\n".join(body).strip())
            found.append(FoundCommand(match.group(1).lower(), match.group(2), ""))
            body = []
        elif not line.strip():
            body.append(line)
        elif not found or not _takes_body(found[-1].name):
            break  # other text first, or after a command without text: what follows is not commands
        else:
            body.append(line)
    if found:
        found[-1] = FoundCommand(found[-1].name, found[-1].argument, "\n".join(body).strip())
    return found


def is_command_line(line: str) -> bool:
    return _COMMAND_LINE.match(line) is not None


def _takes_body(name: str) -> bool:
    known = COMMANDS.get(name)
    return known is not None and known.takes_body


def _text(argument: str, ctx: CommandContext) -> str:
    """The rest of the command line and the lines below it: the text of #note and #reply."""
    return "\n".join(part for part in (argument, ctx.body) if part).strip()


def _member_tier(ctx: CommandContext) -> int | None:
    """The highest tier whose roster has the actor (None: on no roster, or no rules at hand)."""
    if ctx.ruleset is None:
        return None
    levels = [tier.level for tier in ctx.ruleset.tiers if tier.has_member(ctx.actor)]
    return max(levels) if levels else None


def run(name: str, ctx: CommandContext, argument: str) -> str:
    known = COMMANDS.get(name)
    if known is None:
        raise CommandError(f"unknown command #{name}; known: {', '.join('#' + n for n in sorted(COMMANDS))}")
    return known.run(ctx, argument)


@command("ack", "ack", "you take the ticket; reminders stop")
def _ack(ctx: CommandContext, argument: str) -> str:
    tickets.acknowledge(ctx.ticket, ctx.actor, ctx.now, via=ctx.via, tier=_member_tier(ctx), batch=ctx.batch)
    return "acknowledged"


@command("resolve", "resolve [note]", "the ticket is solved; the rest of the line is a note")
def _resolve(ctx: CommandContext, argument: str) -> str:
    tickets.resolve(ctx.ticket, ctx.actor, ctx.now, via=ctx.via, note=argument, batch=ctx.batch)
    if ctx.ruleset is not None and ctx.renderer is not None and ctx.secret is not None:
        from escalate.outbound.notify import queue_resolution_notice  # late: notify imports the ticket modules

        # every tier that was told about the ticket hears that it is over, so nobody keeps working on it
        queue_resolution_notice(ticket=ctx.ticket, actor=ctx.actor, note=argument, ruleset=ctx.ruleset,
                                renderer=ctx.renderer, secret=ctx.secret, now=ctx.now, batch=ctx.batch)
    return "resolved"


@command("wait", "wait [note]", "we asked the customer something: business-time clocks pause until they write")
def _wait(ctx: CommandContext, argument: str) -> str:
    tickets.wait_on_customer(ctx.ticket, ctx.actor, ctx.now, via=ctx.via, note=argument, batch=ctx.batch)
    return "set waiting on the customer:"


@command("close", "close", "close a resolved ticket for good (a customer reply still reopens it)")
def _close(ctx: CommandContext, argument: str) -> str:
    tickets.close(ctx.ticket, ctx.actor, ctx.now, via=ctx.via, batch=ctx.batch)
    return "closed"


@command("note", "note TEXT", "an internal note on the ticket (the customer never sees it)", takes_body=True)
def _note(ctx: CommandContext, argument: str) -> str:
    text = _text(argument, ctx)
    if not text:
        raise CommandError("#note needs text: #note what you found")
    tickets.add_note(ctx.ticket, ctx.actor, ctx.now, text, via=ctx.via, batch=ctx.batch)
    return "added a note to"


@command("escalate", "escalate [TIER] [reason]",
         "ask for escalation; lines impact:, tried:, needed:, deadline: below it describe it", takes_body=True)
def _escalate(ctx: CommandContext, argument: str) -> str:
    words = argument.split(maxsplit=1)
    tier = None
    if words and words[0].isdigit():
        tier = int(words[0])
        argument = words[1] if len(words) > 1 else ""
        if ctx.ruleset is not None:
            try:
                ctx.ruleset.tier(tier)
            except KeyError:
                known = ", ".join(str(t.level) for t in ctx.ruleset.tiers)
                raise CommandError(f"#escalate {tier}: there is no tier {tier} (tiers: {known})") from None
    fields = {}
    for line in ctx.body.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ESCALATION_FIELDS and value.strip():
            fields[key.strip().lower()] = value.strip()
    tickets.request_escalation(ctx.ticket, ctx.actor, ctx.now, via=ctx.via, note=argument, batch=ctx.batch)
    audit.record(ctx.ticket, ctx.now, ctx.actor, "escalation-details", via=ctx.via, requested_tier=tier,
                 reason=argument, **fields, batch=ctx.batch)
    return "asked for escalation of" + (f" to tier {tier}" if tier else "")


@command("assign", "assign me|ADDRESS", "make yourself or another roster member the owner")
def _assign(ctx: CommandContext, argument: str) -> str:
    target = argument.strip().lower()
    if target in ("", "me"):
        target = ctx.actor
    if ctx.ruleset is not None and not ctx.ruleset.is_roster_member(target):
        raise CommandError(f"#assign {target}: not on any tier's roster")
    tickets.assign(ctx.ticket, target, by=ctx.actor, now=ctx.now, via=ctx.via, batch=ctx.batch)
    return f"assigned to {target}:"


@command("severity", "severity LEVEL", "change the severity (its targets apply from now)")
def _severity(ctx: CommandContext, argument: str) -> str:
    level = argument.strip().lower()
    if ctx.ruleset is not None:
        names = [s.name for s in ctx.ruleset.severities]
        if level not in names:
            raise CommandError(f"#severity {level or '?'}: expected one of {', '.join(names)}")
    tickets.set_severity(ctx.ticket, level, by=ctx.actor, now=ctx.now, via=ctx.via, batch=ctx.batch)
    return f"set severity {level} on"


@command("snooze", "snooze DURATION", "no reminders for this long (at most 7d), e.g. #snooze 2h")
def _snooze(ctx: CommandContext, argument: str) -> str:
    try:
        length = parse_duration(argument.strip())
    except ValueError as error:
        raise CommandError(f"#snooze: {error}") from None
    if not timedelta(0) < length <= MAX_SNOOZE:
        raise CommandError(f"#snooze: between 1m and {format_duration(MAX_SNOOZE)}, got {argument.strip()!r}")
    tickets.snooze(ctx.ticket, ctx.now + length, by=ctx.actor, now=ctx.now, via=ctx.via, batch=ctx.batch)
    return f"snoozed for {format_duration(length)}:"


@command("reply", "reply", "the rest of your mail goes to the customer, from the support address", takes_body=True)
def _reply(ctx: CommandContext, argument: str) -> str:
    from escalate.outbound.notify import queue_customer_reply  # notify imports this module's neighbours; import late

    text = _text(argument, ctx)
    if not text:
        raise CommandError("#reply needs the text for the customer below it")
    if ctx.ruleset is None or ctx.renderer is None or ctx.secret is None:
        raise CommandError("#reply needs the daemon's settings (run it by mail or with `escalate tickets reply`)")
    queue_customer_reply(ticket=ctx.ticket, actor=ctx.actor, text=text, ruleset=ctx.ruleset,
                         renderer=ctx.renderer, secret=ctx.secret, now=ctx.now, batch=ctx.batch)
    tickets.record_customer_reply(ctx.ticket, ctx.actor, ctx.now, via=ctx.via, batch=ctx.batch)
    return "replied to the customer on"
