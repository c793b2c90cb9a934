"""Mail commands a tier member can put in a reply (`#ack`, `#resolve`, `#note`), found by name.

Each command is one small function registered with `@command`; adding one is adding a function.
The same functions serve the CLI (`escalate tickets ack REF`), so both leave the same audit trail.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from . import tickets
from .models import Ticket


@dataclass(frozen=True)
class CommandContext:
    ticket: Ticket
    actor: str
    now: datetime
    via: str  # "mail" or "cli"


@dataclass(frozen=True)
class Command:
    name: str
    description: str
    run: Callable[[CommandContext, str], str]  # returns what happened, for the confirmation ("acknowledged")


COMMANDS: dict[str, Command] = {}

# a command is a line of the reply's new text that starts with "#word"
_COMMAND_LINE = re.compile(r"^\s*#([A-Za-z][A-Za-z-]*)\b[ \t]*(.*?)\s*$")


def command(name: str, description: str):
    def register(function: Callable[[CommandContext, str], str]) -> Callable[[CommandContext, str], str]:
        COMMANDS[name] = Command(name, description, function)
        return function
    return register


def find_commands(new_text: str) -> list[tuple[str, str]]:
    """(name, argument) for each command line in the text a person just wrote."""
    found = []
    for line in new_text.splitlines():
        match = _COMMAND_LINE.match(line)
        if match:
            found.append((match.group(1).lower(), match.group(2)))
    return found


@command("ack", "you take the ticket; reminders stop")
def _ack(ctx: CommandContext, argument: str) -> str:
    tickets.acknowledge(ctx.ticket, ctx.actor, ctx.now, via=ctx.via)
    return "acknowledged"


@command("resolve", "the ticket is solved; the rest of the line is a note")
def _resolve(ctx: CommandContext, argument: str) -> str:
    tickets.resolve(ctx.ticket, ctx.actor, ctx.now, via=ctx.via, note=argument)
    return "resolved"


@command("note", "an internal note on the ticket")
def _note(ctx: CommandContext, argument: str) -> str:
    tickets.add_note(ctx.ticket, ctx.actor, ctx.now, argument, via=ctx.via)
    return "added a note to"
