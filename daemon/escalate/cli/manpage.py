"""The man page escalate(1), written from the click commands themselves, so it says what `--help`
says: every command with its usage, description and options.

    python -m escalate.cli.manpage > man/escalate.1

The page is committed (tests/test_manpage.py fails when it is not current) and the wheel installs
it as share/man/man1/escalate.1 under the install prefix, where `man escalate` finds it beside
the prefix's bin/ on PATH.
"""

from __future__ import annotations

import inspect
import sys
from typing import Iterator

import click

DESCRIPTION = """\
escalate polls the support mailbox over IMAP, threads every message into a ticket, runs each
ticket's clock against the rules in rules.yaml and escalates what is slipping to the tier groups
by email, repeating and climbing tiers until a person acknowledges. Tier members act by replying
(#ack, #resolve, #note); the commands below do the same from the shell.

Every listing prints one table for people and takes --json for scripts. Options go after the
command's name; --now ISO-8601 is offered where the result depends on the time.
"""

SECTIONS_AFTER = """\
.SH EXIT STATUS
0 on success; 1 for a runtime failure (the IMAP server unreachable, the database cannot be written);
2 for bad usage or bad input (a bad rules file, an unknown ticket, a tier member a mail reply would refuse);
3 from \\fBstatus\\fR when no daemon is running (as \\fBsystemctl is\\-active\\fR).
.SH ENVIRONMENT
.TP
.B ESCALATE_IMAP_URL
The support mailbox: imap://, imap+starttls:// or imaps://user:password@host:port/FOLDER,...
.TP
.B ESCALATE_SMTP_URL
Where escalations are sent from: smtp://, smtp+starttls:// or smtps://.
.TP
.B ESCALATE_DB_URL
The database: a SQLite file (the default) or postgresql://... for several instances.
.TP
.B ESCALATE_RULES
The rules file (rules.yaml).
.TP
.B ESCALATE_SECRET
Signs the reply tokens in every notification.
.TP
.B ESCALATE_NOW
Act as if it were this ISO\\-8601 time, for every command (\\fB\\-\\-now\\fR where a command offers it).
.TP
.B ESCALATE_ENV_FILE
Read settings from this KEY=VALUE file (the environment wins), as \\fB\\-\\-env\\-file\\fR.
.SH SEE ALSO
The README of escalate: the rules file, running it under systemd, the JSON shapes scripts rely on.
"""


def walk(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under `command` (itself first) with its words after `escalate`, in name order."""
    yield path, command
    if isinstance(command, click.Group):
        for name in sorted(command.commands):
            yield from walk(command.commands[name], path + (name,))


def _roff(text: str) -> str:
    """Text safe in a roff body: backslashes and hyphens escaped, no line read as a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.splitlines())


def _paragraphs(text: str) -> str:
    return "\n.PP\n".join(_roff(" ".join(part.split())) for part in inspect.cleandoc(text).split("\n\n") if part.strip())


def render(main: click.Group) -> str:
    root = click.Context(main, info_name="escalate")
    out = [".TH ESCALATE 1 \"\" \"escalate\" \"User Commands\"", ".SH NAME",
           "escalate \\- " + _roff(main.get_short_help_str(limit=200).removeprefix("escalate: ")),
           ".SH SYNOPSIS", ".B escalate", "[\\fIOPTIONS\\fR] \\fICOMMAND\\fR [\\fIARGS\\fR]...",
           ".SH DESCRIPTION", _paragraphs(DESCRIPTION), ".SH OPTIONS"]
    out += _options(main, root)
    out.append(".SH COMMANDS")
    for path, command in walk(main):
        if not path or command.hidden:
            continue
        ctx = click.Context(command, info_name=" ".join(("escalate",) + path), parent=None)
        usage = " ".join(command.collect_usage_pieces(ctx))
        out += [".SS " + _roff(" ".join(path)), f".B escalate {_roff(' '.join(path))}", _roff(usage)]
        if command.help:
            out += [".PP", _paragraphs(command.help)]
        out += _options(command, ctx)
    return "\n".join(out) + "\n" + SECTIONS_AFTER


def _options(command: click.Command, ctx: click.Context) -> list[str]:
    lines = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Argument):  # named in the usage line; the description says what it is
            continue
        record = param.get_help_record(ctx)
        if record is None or "--help" in record[0]:
            continue
        names, help_text = record
        lines += [".TP", f"\\fB{_roff(names)}\\fR", _roff(" ".join(help_text.split()))]
    return lines


if __name__ == "__main__":
    from escalate.cli import main as escalate_main

    sys.stdout.write(render(escalate_main))
