"""The `escalate` command: a thin skin over the service layer (sqlite-utils style).

Each command parses options, calls one library function and formats the result as a table or
`--json`. Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input (DESIGN.md).
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Callable

import click

from . import __version__, clock, db, logs, outbox, queries
from .commands import COMMANDS, CommandContext
from .config import ConfigError, Settings, load_settings
from .db import write_transaction
from .instance import AlreadyRunning, InstanceLock
from .mailbox import MailboxUnavailable
from .rules.loader import RulesError, check_rules
from .service import Daemon, open_app, run_once
from .templates import Renderer, TemplateProblem
from .tickets import TicketStateError


class BadInput(click.ClickException):
    """Bad usage or bad input: exit status 2."""

    exit_code = 2


class RuntimeFailure(click.ClickException):
    exit_code = 1


def _translate_errors(function: Callable) -> Callable:
    """Library errors become one clear line at the edge, with the right exit status."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (ConfigError, RulesError, TemplateProblem, queries.NotFound, TicketStateError,
                db.DatabaseUrlError, clock.BadTime) as error:
            raise BadInput(str(error)) from None
        except MailboxUnavailable as error:
            raise RuntimeFailure(f"{error}\nIs the IMAP server up and ESCALATE_IMAP_URL right?") from None
        except AlreadyRunning as error:
            raise RuntimeFailure(str(error)) from None
    return wrapper


def _set_now(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        try:
            clock.set_now(clock.parse_time(value))
        except clock.BadTime as error:
            raise click.BadParameter(str(error)) from None


def now_option(function: Callable) -> Callable:
    """Every subcommand takes --now ISO-8601: evaluate as if at that time."""
    return click.option("--now", metavar="ISO-8601", expose_value=False, callback=_set_now, is_eager=True,
                        help="Act as if it were this time (also ESCALATE_NOW).")(function)


def json_option(function: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def command(group: click.Group, *args, **kwargs):
    """A subcommand with --now and error translation."""
    def decorate(function: Callable) -> Callable:
        return group.command(*args, **kwargs)(now_option(_translate_errors(function)))
    return decorate


def _settings(ctx: click.Context) -> Settings:
    settings = load_settings(env_file=ctx.obj.get("env_file"))
    logs.redactor.add(settings.secret_values())
    return settings


def _open(ctx: click.Context):
    return open_app(_settings(ctx))


def _open_db(ctx: click.Context) -> None:
    db.connect(_settings(ctx).db_url)


def _emit(data: Any, as_json: bool, columns: list[str] | None = None) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if columns is None:
        click.echo(data)
        return
    rows = [[("" if row.get(c) is None else str(row.get(c))) for c in columns] for row in data]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    widths[-1] = min(widths[-1], 60)
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths)).rstrip())
    for row in rows:
        click.echo("  ".join(v[:60].ljust(w) for v, w in zip(row, widths)).rstrip())
    if not rows:
        click.echo("(none)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="escalate")
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=Path), envvar="ESCALATE_ENV_FILE",
              help="Read settings from this KEY=VALUE file (the environment wins).")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.pass_context
def main(ctx: click.Context, env_file: Path | None, verbose: int) -> None:
    """escalate: turn the support mailbox into tickets and escalate what is slipping, by email."""
    ctx.ensure_object(dict)
    ctx.obj["env_file"] = env_file
    logs.setup(verbose)


def example_rules_path() -> Path:
    packaged = Path(__file__).parent / "data" / "rules.yaml"
    return packaged if packaged.exists() else Path(__file__).resolve().parents[2] / "rules.yaml"


@command(main, "init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing rules.yaml and env file.")
def init_command(directory: Path, force: bool) -> None:
    """Write DIR/rules.yaml and DIR/escalate.env and create the database."""
    directory.mkdir(parents=True, exist_ok=True)
    rules_path, env_path = directory / "rules.yaml", directory / "escalate.env"
    for path in (rules_path, env_path):
        if path.exists() and not force:
            raise BadInput(f"{path} exists; use --force to overwrite it")
    shutil.copyfile(example_rules_path(), rules_path)
    db_url = os.environ.get("ESCALATE_DB_URL") or f"sqlite:///{(directory / 'escalate.db').resolve()}"
    env_path.write_text(
        "# escalate settings. systemd reads this file with EnvironmentFile=; the CLI with --env-file.\n"
        "# Secrets belong here (mode 0600), never in rules.yaml.\n\n"
        "# The support mailbox: imap:// (plain), imap+starttls:// or imaps:// (TLS); folders after the slash, comma-separated\n"
        "ESCALATE_IMAP_URL=imap://support:CHANGE-ME@127.0.0.1:143/INBOX\n"
        "# Where escalations are sent from: smtp://, smtp+starttls:// or smtps://, user:password@ for AUTH\n"
        "ESCALATE_SMTP_URL=smtp://127.0.0.1:25\n"
        "# The database: a SQLite file (default), or postgresql://… for several instances\n"
        f"ESCALATE_DB_URL={db_url}\n"
        f"ESCALATE_RULES={rules_path.resolve()}\n"
        "# Signs the reply tokens in every notification. Keep it secret; changing it invalidates open tokens.\n"
        f"ESCALATE_SECRET={secrets.token_hex(32)}\n"
        "# Optional: your own templates (looked up before the shipped ones)\n"
        "# ESCALATE_TEMPLATES=/etc/escalate/templates\n"
        "# How often to poll the mailbox, evaluate tickets and send, in seconds\n"
        "ESCALATE_POLL_SECONDS=60\nESCALATE_TICK_SECONDS=30\nESCALATE_SEND_SECONDS=10\n",
        encoding="utf-8")
    env_path.chmod(0o600)
    db.connect(db_url)
    db.close()
    click.echo(f"wrote {rules_path}\nwrote {env_path} (mode 0600: it holds the secret)\ncreated database {db_url}\n"
               f"next: edit both, check with `escalate rules check {rules_path}`, then "
               f"`escalate --env-file {env_path} run`")


OUTCOME_WORDS = {"ticket": ("new ticket", "new tickets"), "reply": ("reply", "replies"),
                 "duplicate": ("duplicate", "duplicates"), "own": ("own notification", "own notifications"),
                 "quarantined": ("quarantined", "quarantined")}


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


@command(main, "run")
@click.option("--once", is_flag=True, help="One full cycle (ingest, evaluate, send), then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the cycle's result as JSON.")
@click.pass_context
def run_command(ctx: click.Context, once: bool, as_json: bool) -> None:
    """The daemon: poll the mailbox, evaluate the rules, send escalations."""
    app = _open(ctx)
    with InstanceLock(app.settings.db_url):
        if not once:
            Daemon(app).run()
            return
        result = run_once(app, clock.now())
    summary = {
        "ingested": dict(result.ingest.outcomes), "tickets_created": result.ingest.tickets_created,
        "evaluated": result.tick.evaluated, "notifications_queued": result.tick.notifications,
        "sent": result.send.sent, "retrying": result.send.retrying, "failed": result.send.failed,
        "errors": result.send.errors,
    }
    if as_json:
        _emit(summary, True)
    else:
        ingested = ", ".join(_count(n, *OUTCOME_WORDS.get(k, (k, k))) for k, n in sorted(summary["ingested"].items()))
        ingested = ingested or "no new mail"
        click.echo(f"ingested: {ingested}; evaluated {_count(summary['evaluated'], 'due ticket', 'due tickets')}, "
                   f"queued {_count(summary['notifications_queued'], 'notification', 'notifications')}; "
                   f"sent {summary['sent']}"
                   + (f", {summary['retrying']} to retry" if summary["retrying"] else "")
                   + (f", {summary['failed']} failed" if summary["failed"] else ""))
        for error in summary["errors"]:
            click.echo(f"warning: {error}", err=True)


@command(main, "status")
@json_option
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """What the daemon is doing: running or not, tickets, outbox, folders, quarantine."""
    from . import status

    settings = _settings(ctx)
    db.connect(settings.db_url)
    facts = status.collect(settings, clock.now())
    _emit(facts if as_json else status.describe(facts), as_json)


@main.group("tickets")
def tickets_group() -> None:
    """List, inspect and act on tickets."""


@command(tickets_group, "list")
@click.option("--status", type=click.Choice(["new", "open", "waiting", "resolved", "closed"]))
@json_option
@click.pass_context
def tickets_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """Tickets with status, severity, tier and when they are next due."""
    _open_db(ctx)
    _emit(queries.list_tickets(status), as_json,
          ["ref", "status", "severity", "tier", "message_count", "created_at", "next_due_at", "subject"])


@command(tickets_group, "show")
@click.argument("ref")
@json_option
@click.pass_context
def tickets_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One ticket with its messages, escalations and events."""
    _open_db(ctx)
    detail = queries.show_ticket(ref)
    if as_json:
        _emit(detail, True)
        return
    click.echo(f"{detail['ref']}  {detail['subject']}")
    for key in ("requester", "status", "severity", "tier", "assignee", "created_at", "next_due_at"):
        click.echo(f"  {key + ':':14}{detail[key] if detail[key] is not None else '-'}")
    click.echo("messages:")
    for m in detail["messages"]:
        click.echo(f"  {m['received_at']}  {m['kind']:8} {m['from']}  {m['subject']}")
    click.echo("escalations:")
    for e in detail["escalations"]:
        click.echo(f"  {e['rule']}: tier {e['tier']}, step {e['step']}, {e['state']}")
    click.echo("events:")
    for e in detail["events"]:
        click.echo(f"  {e['at']}  {e['actor']}  {e['action']}" + (f" ({e['rule']})" if e["rule"] else ""))


def _act(ctx: click.Context, name: str, ref: str, actor: str | None, argument: str) -> None:
    _open_db(ctx)
    actor = actor or f"cli:{getpass.getuser()}"
    with write_transaction():
        ticket = queries.get_ticket(ref)
        done = COMMANDS[name].run(CommandContext(ticket, actor, clock.now(), "cli"), argument)
    click.echo(f"{ticket.ref} {done} by {actor}; status {ticket.status}")


@command(tickets_group, "ack")
@click.argument("ref")
@click.option("--as", "actor", metavar="ADDRESS", help="Who acknowledges (default: cli:$USER).")
@click.pass_context
def tickets_ack(ctx: click.Context, ref: str, actor: str | None) -> None:
    """Acknowledge a ticket: reminders stop."""
    _act(ctx, "ack", ref, actor, "")


@command(tickets_group, "resolve")
@click.argument("ref")
@click.option("--as", "actor", metavar="ADDRESS")
@click.option("--note", default="", help="What solved it.")
@click.pass_context
def tickets_resolve(ctx: click.Context, ref: str, actor: str | None, note: str) -> None:
    """Resolve a ticket."""
    _act(ctx, "resolve", ref, actor, note)


@command(tickets_group, "note")
@click.argument("ref")
@click.argument("text")
@click.option("--as", "actor", metavar="ADDRESS")
@click.pass_context
def tickets_note(ctx: click.Context, ref: str, text: str, actor: str | None) -> None:
    """Add an internal note to a ticket."""
    _act(ctx, "note", ref, actor, text)


@main.group("rules")
def rules_group() -> None:
    """Check the rules file."""


@command(rules_group, "check")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.pass_context
def rules_check(ctx: click.Context, file: Path | None) -> None:
    """Validate rules.yaml; every error names the file, line and reason (exit 2 on errors)."""
    settings = _settings_or_none(ctx)
    path = file or (settings.rules_path if settings else Path("rules.yaml"))
    admin_templates = settings.templates_dir if settings else None
    issues = check_rules(path, template_names=Renderer(admin_templates).names())
    if issues:
        for issue in issues:
            click.echo(str(issue), err=True)
        raise BadInput(f"{len(issues)} error{'s' if len(issues) != 1 else ''} in {path}")
    click.echo(f"{path}: ok")


def _settings_or_none(ctx: click.Context) -> Settings | None:
    try:
        return _settings(ctx)
    except ConfigError:
        return None


@main.group("outbox")
def outbox_group() -> None:
    """Queued, sent and failed mail."""


@command(outbox_group, "list")
@click.option("--status", type=click.Choice(["queued", "sent", "failed", "cancelled"]))
@json_option
@click.pass_context
def outbox_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    """Mail escalate has queued or sent."""
    _open_db(ctx)
    _emit(queries.list_outbox(status), as_json, ["id", "ticket", "kind", "tier", "status", "attempts", "created_at", "subject"])


@command(outbox_group, "retry")
@click.argument("ids", nargs=-1, type=int)
@click.pass_context
def outbox_retry(ctx: click.Context, ids: tuple[int, ...]) -> None:
    """Queue failed mail again (all failed rows, or the given ids)."""
    _open_db(ctx)
    count = outbox.retry(list(ids) or None, clock.now())
    click.echo(f"{count} queued for sending")


@main.group("quarantine")
def quarantine_group() -> None:
    """Mail that could not be processed."""


@command(quarantine_group, "list")
@json_option
@click.pass_context
def quarantine_list(ctx: click.Context, as_json: bool) -> None:
    """Quarantined mail with the reason."""
    _open_db(ctx)
    _emit(queries.list_quarantine(), as_json, ["id", "received_at", "folder", "uid", "reason"])


@command(main, "demo")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the demo's database and server files here (default: a new temp dir).")
@click.option("--rules", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Rules to demonstrate (default: the example rules.yaml).")
def demo_command(workdir: Path | None, rules: Path | None) -> None:
    """Run the whole loop on loopback servers with simulated time (needs Debian's dovecot-imapd)."""
    from .demo import run_demo  # the demo pulls in the loopback servers; keep them out of normal runs

    kept = run_demo(workdir, rules or example_rules_path())
    click.echo(f"\nThe demo's state is in {kept} (inspect it with "
               f"`escalate --env-file {kept / 'escalate.env'} tickets list`).")
