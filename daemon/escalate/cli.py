"""The `escalate` command: a thin skin over the service layer (sqlite-utils style).

Each command parses options, calls one library function and formats the result as a table or
`--json`. Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
import zoneinfo
from pathlib import Path
from typing import Any, Callable, Iterable

import click
import peewee

from escalate import __version__, clock
from escalate.tickets import commands
from escalate.store import db
from escalate.ops import logs
from escalate.outbound import outbox
from escalate.reports import queries
from escalate.config import ConfigError, Settings, load_settings, redact_url
from escalate.ops.instance import InstanceLock
from escalate.ops.service import Daemon, open_app, run_once
from escalate.outbound.templates import Renderer
from escalate.errors import EscalateError, InputError


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
        except EscalateError as error:  # ours: one line, and its exit status (errors.py)
            raise (BadInput if isinstance(error, InputError) else RuntimeFailure)(error.message()) from None
        except peewee.OperationalError as error:  # cannot open, write or reach it: a runtime failure
            raise RuntimeFailure(db.explain(error)) from None
        except BrokenPipeError:  # the reader went away (`escalate tickets list | head`): nothing to report
            raise
        except OSError as error:  # a file or directory escalate cannot use (read-only, full, not its own)
            where = f"{error.filename}: " if error.filename else ""
            raise RuntimeFailure(f"{where}{error.strerror or error}; check that this user may read and write it "
                                 "and that the disk is not full") from None
    return wrapper


def _set_now(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value:
        try:
            clock.set_now(clock.parse_time(value))
        except clock.BadTime as error:
            raise click.BadParameter(str(error)) from None


def now_option(function: Callable) -> Callable:
    """--now ISO-8601: evaluate as if at that time. Offered by the commands whose result depends on
    the time (ESCALATE_NOW reaches every command all the same)."""
    return click.option("--now", metavar="ISO-8601", expose_value=False, callback=_set_now, is_eager=True,
                        help="Act as if it were this time (also ESCALATE_NOW).")(function)


def json_option(function: Callable) -> Callable:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(function)


def command(group: click.Group, *args, now: bool = False, **kwargs):
    """A subcommand with error translation, and --now when `now` (its result depends on the time)."""
    def decorate(function: Callable) -> Callable:
        function = _translate_errors(function)
        return group.command(*args, **kwargs)(now_option(function) if now else function)
    return decorate


def _settings(ctx: click.Context) -> Settings:
    settings = load_settings(env_file=ctx.obj.get("env_file"))
    logs.redactor.add(settings.secret_values())
    return settings


def _open(ctx: click.Context):
    """Settings, rules, templates and the database, which must exist (only `init` and `db migrate` create one)."""
    return open_app(_settings(ctx), create=False)


def _open_db(ctx: click.Context) -> None:
    """The database only (a listing works while rules.yaml is broken); times still in the team's zone."""
    settings = _settings(ctx)
    _display_zone_of(settings)
    db.connect(settings.db_url, create=False)


def _display_zone_of(settings: Settings) -> None:
    """Only the rules' `timezone` (checking the whole file costs a listing a quarter of a second);
    UTC, still marked as such, when the file or its zone cannot be read."""
    import yaml

    try:
        rules = yaml.load(settings.rules_path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        name = rules.get("timezone") if isinstance(rules, dict) else None
        clock.set_display_zone(name if isinstance(name, str) else None)
    except (OSError, ValueError, yaml.YAMLError, zoneinfo.ZoneInfoNotFoundError):
        pass


def _emit(data: Any, as_json: bool) -> None:
    """`data` as JSON for scripts, or (text for people) as it is; tables go through table.py."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False) if as_json else data)


def _emit_json_list(rows: Iterable[Any]) -> None:
    """`_emit(list(rows), True)`, the same text, written an item at a time (a listing of tens of
    thousands is never held whole, as objects or as text)."""
    chunk: list[str] = []
    written = 0
    for row in rows:  # (json.dumps escapes newlines inside strings: each one here is indentation)
        chunk.append(("[\n  " if not written and not chunk else ",\n  ")
                     + json.dumps(row, indent=2, ensure_ascii=False).replace("\n", "\n  "))
        if len(chunk) == 500:  # written in pieces of some hundred items
            click.echo("".join(chunk), nl=False)
            written += len(chunk)
            chunk.clear()
    click.echo("".join(chunk) + ("[]" if not written and not chunk else "\n]"))


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
    try:  # the daemon logs what it does at INFO; other commands only what goes wrong
        logs.setup(verbose, daemon=ctx.invoked_subcommand == "run", env_file=env_file)
    except logs.LogFormatError as error:
        raise BadInput(str(error)) from None


def example_rules_path() -> Path:
    packaged = Path(__file__).parent / "data" / "rules.yaml"
    return packaged if packaged.exists() else Path(__file__).resolve().parents[2] / "rules.yaml"


@command(main, "init", short_help="Write rules.yaml and escalate.env, create the database.")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path), default=".")
@click.option("--force", is_flag=True, help="Overwrite an existing rules.yaml and env file.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Where the database goes (default: /var/lib/escalate, the systemd unit's state directory, "
                   "when DIRECTORY is under /etc; else DIRECTORY). ESCALATE_DB_URL, when set, wins.")
@json_option
def init_command(directory: Path, force: bool, state_dir: Path | None, as_json: bool) -> None:
    """Write DIR/rules.yaml and DIR/escalate.env and create the database."""
    from escalate.ops.initdir import InitError, init_directory

    try:
        written = init_directory(directory, example_rules_path(), force=force, db_url=os.environ.get("ESCALATE_DB_URL"),
                                 state_directory=state_dir)
    except InitError as error:
        raise BadInput(str(error)) from None
    if as_json:
        _emit({"rules": str(written.rules_path.resolve()), "env_file": str(written.env_path.resolve()),
               "database": redact_url(written.db_url)}, True)
        return
    click.echo(f"wrote {written.rules_path}\nwrote {written.env_path} (mode 0600: it holds the secret)\n"
               f"created database {written.db_url}\n"
               f"next: edit both, check with `escalate --env-file {written.env_path} config check`, then "
               f"`escalate --env-file {written.env_path} run`")


OUTCOME_WORDS = {"ticket": ("new ticket", "new tickets"), "reply": ("reply", "replies"),
                 "duplicate": ("duplicate", "duplicates"), "own": ("own notification", "own notifications"),
                 "own-address": ("mail from our own address", "mails from our own addresses"),
                 "limited": ("mail on the sender's latest ticket (ticket limit)",
                             "mails on their senders' latest tickets (ticket limit)"),
                 "quarantined": ("quarantined", "quarantined")}


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


@command(main, "run", now=True, short_help="The daemon: poll, evaluate the rules, send escalations.")
@click.option("--once", is_flag=True, help="One full cycle (ingest, evaluate, send), then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the cycle's result as JSON.")
@click.pass_context
def run_command(ctx: click.Context, once: bool, as_json: bool) -> None:
    """The daemon: poll the mailbox, evaluate the rules, send escalations."""
    if as_json and not once:
        raise click.UsageError("--json prints the result of one cycle: use it with --once")
    app = _open(ctx)
    app.secret  # noqa: B018 -- a missing or weak ESCALATE_SECRET is refused before anything starts
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
        for error in summary["errors"] if result.send_error is None else ():
            click.echo(f"warning: {error}", err=True)
    if result.send_error is not None:
        raise RuntimeFailure(str(result.send_error))  # SMTP down or login refused: exit 1, the mail stays queued


@command(main, "status", now=True, short_help="Whether the daemon runs (exit 3 if not) and its state.")
@json_option
@click.pass_context
def status_command(ctx: click.Context, as_json: bool) -> None:
    """What the daemon is doing: running or not, tickets, outbox, folders, quarantine.

    Exit status 3 when no daemon is running (as `systemctl is-active`), after the report."""
    from escalate.ops import status

    settings = _settings(ctx)
    _display_zone_of(settings)
    db.connect(settings.db_url, create=False)
    facts = status.collect(settings, clock.now())
    _emit(facts, True) if as_json else status.show(facts)
    if not facts["daemon"]["running"]:
        ctx.exit(status.NOT_RUNNING)


@main.group("db")
def db_group() -> None:
    """The database schema: migrations."""


@command(db_group, "migrate", short_help="Apply pending schema migrations.")
@click.option("--dry-run", is_flag=True, help="List the pending migrations; apply nothing.")
@json_option
@click.pass_context
def db_migrate(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Apply pending schema migrations (once, under a lock; the daemon also does this at start)."""
    from escalate.store import migrations

    database = db.connect(_settings(ctx).db_url, migrate=False)
    done = migrations.pending(database) if dry_run else migrations.migrate(database)
    version = migrations.current_version(database) if not dry_run else None
    if as_json:
        _emit({"dry_run": dry_run, "migrations": [{"version": m.version, "name": m.name} for m in done],
               "schema_version": version}, True)
        return
    verb = "pending" if dry_run else "applied"
    for migration in done:
        click.echo(f"{verb} migration {migration.version}: {migration.name}")
    if not done:
        click.echo(f"schema up to date (migration {migrations.current_version(database)})")
    elif not dry_run:
        click.echo(f"schema at migration {version}")


@main.group("config")
def config_group() -> None:
    """Check the configuration before a deploy."""


@command(config_group, "check", short_help="Check every setting, connection and file before a deploy.")
@json_option
@click.pass_context
def config_check(ctx: click.Context, as_json: bool) -> None:
    """Check every setting in the environment and env file: URL syntax, the secret's strength, the
    IMAP login and folders, the SMTP server's EHLO and AUTH, the database reachable and migrated,
    rules.yaml, and the template overrides. One line per check (--json: a list of {check, ok,
    detail}). It sends no mail and changes nothing.

    \b
    Exit status:
      0  every check passed
      1  a check failed
      2  the configuration cannot be read (the env file is missing or malformed)
    """
    from escalate.ops import configcheck

    results = configcheck.run_checks(configcheck.read_environment(ctx.obj.get("env_file")))
    if as_json:
        _emit([result.as_dict() for result in results], True)
    else:
        width = max(len(result.check) for result in results)
        for result in results:
            click.echo(f"{'ok  ' if result.ok else 'FAIL'}  {result.check.ljust(width)}  {result.detail}")
    ctx.exit(configcheck.exit_status(results))


@main.group("tickets")
def tickets_group() -> None:
    """List, inspect and act on tickets."""


SORT_KEYS = sorted(queries.TICKET_SORTS)
PEOPLE_LIMIT = 200  # rows in the table for people unless --limit says otherwise; --json lists all


@command(tickets_group, "list", now=True, short_help="Tickets: status, severity, tier, next due; filtered, sorted.")
@click.option("--status", "statuses", multiple=True, help="new, open, waiting, resolved or closed; repeat for several "
              "(or 'active' for new, open and waiting).",
              type=click.Choice(["new", "open", "waiting", "resolved", "closed", "active"]))
@click.option("--tier", "tiers", type=int, multiple=True, metavar="N", help="Tickets that reached tier N (repeatable).")
@click.option("--severity", "severities", multiple=True, metavar="NAME", help="A severity from rules.yaml (repeatable).")
@click.option("--overdue", is_flag=True, help="Open tickets past their first-response or resolution target now.")
@click.option("--requester", metavar="TEXT", help="Part of the requester's address, e.g. carl@ or @acme.example.")
@click.option("--text", metavar="TEXT", help="Words in the subject or in any message of the ticket.")
@click.option("--no-drills", is_flag=True, help="Leave out drill tickets (they are marked DRILL otherwise).")
@click.option("--sort", type=click.Choice(SORT_KEYS), default="created", show_default=True,
              help="Order by this; severity follows the rules' order, most severe first.")
@click.option("--desc", "descending", is_flag=True, help="Reverse the order (newest, most severe, … first).")
@click.option("--limit", type=click.IntRange(min=0), default=None, metavar="N",
              help=f"At most N tickets (default: {PEOPLE_LIMIT} in the table, all with --json; 0 = all).")
@json_option
@click.pass_context
def tickets_list(ctx: click.Context, statuses: tuple[str, ...], tiers: tuple[int, ...], severities: tuple[str, ...],
                 overdue: bool, requester: str | None, text: str | None, no_drills: bool, sort: str,
                 descending: bool, limit: int | None, as_json: bool) -> None:
    """Tickets with status, severity, tier and when they are next due, filtered and sorted."""
    from escalate.tickets import sla
    from escalate.reports import views
    from escalate.store.models import ACTIVE_STATUSES

    wanted = tuple(dict.fromkeys(s for name in statuses for s in (ACTIVE_STATUSES if name == "active" else (name,))))
    ruleset = None
    if overdue or sort == "severity" or severities:
        app = _open(ctx)  # targets, severity order and names come from the rules
        ruleset = app.ruleset
        known = [s.name for s in ruleset.severities]
        unknown = [s for s in severities if s not in known]
        if unknown:
            raise BadInput(f"no severity {', '.join(unknown)} in {ruleset.source}; the severities are {', '.join(known)}")
    else:
        _open_db(ctx)
    where = queries.TicketFilter(statuses=wanted, tiers=tiers, severities=severities, requester=requester, text=text,
                                 only_ids=sla.overdue_ids(ruleset, clock.now()) if overdue else None,
                                 drills=not no_drills)
    if limit is None:
        limit = 0 if as_json else PEOPLE_LIMIT
    rows, total = queries.stream_tickets(where, sort=sort, descending=descending, limit=limit or None,
                                         severity_rank=[s.name for s in ruleset.severities] if ruleset else None)
    if as_json:
        _emit_json_list(rows)
    else:
        views.tickets_table(rows, total)


@command(tickets_group, "show", short_help="One ticket: conversation, escalations, notifications, audit trail.")
@click.argument("ref")
@json_option
@click.pass_context
def tickets_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One ticket: its conversation, escalations, notifications and audit trail."""
    from escalate.reports import views

    _open_db(ctx)
    detail = queries.show_ticket(ref)
    if as_json:
        _emit(detail, True)
        return
    views.ticket_detail(detail)


def _act(ctx: click.Context, name: str, ref: str, actor: str | None, argument: str, body: str = "", *,
         force: bool = False, as_json: bool = False) -> None:
    """Run a mail command from the CLI: same function, same audit trail, `via` = cli, and the
    roster check a mail reply gets for --as (ticket_actions.py)."""
    from escalate.tickets import actions as ticket_actions

    app = _open(ctx)
    try:
        result = ticket_actions.act(name, ref, actor, argument, body, ruleset=app.ruleset, renderer=app.renderer,
                                    secret=app.secret, now=clock.now(), force=force)
    except ticket_actions.NotOnRoster as error:
        raise BadInput(str(error)) from None
    _emit(result if as_json else ticket_actions.describe(result), as_json)


def action_options(function: Callable) -> Callable:
    """--as ADDRESS, --force and --json: what every ticket action takes."""
    function = click.option("--force", is_flag=True,
                            help="Act as --as ADDRESS even when a mail reply from it would be refused "
                                 "(recorded in the audit trail as an admin override).")(function)
    function = click.option("--as", "actor", metavar="ADDRESS",
                            help="Act as this tier member; a mail reply from it must be allowed "
                                 "(default: you, cli:$USER).")(function)
    return json_option(function)


@command(tickets_group, "ack", now=True)
@click.argument("ref")
@action_options
@click.pass_context
def tickets_ack(ctx: click.Context, ref: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Acknowledge a ticket: reminders stop."""
    _act(ctx, "ack", ref, actor, "", force=force, as_json=as_json)


@command(tickets_group, "resolve", now=True)
@click.argument("ref")
@click.option("--note", default="", help="What solved it.")
@action_options
@click.pass_context
def tickets_resolve(ctx: click.Context, ref: str, note: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Resolve a ticket."""
    _act(ctx, "resolve", ref, actor, note, force=force, as_json=as_json)


@command(tickets_group, "note", now=True)
@click.argument("ref")
@click.argument("text")
@action_options
@click.pass_context
def tickets_note(ctx: click.Context, ref: str, text: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Add an internal note to a ticket."""
    _act(ctx, "note", ref, actor, text, force=force, as_json=as_json)


@command(tickets_group, "escalate", now=True)
@click.argument("ref")
@click.option("--tier", type=int, help="The tier you ask for (default: what the rules say).")
@click.option("--reason", default="", help="Why it needs escalating.")
@click.option("--impact", default="", help="Who and what is affected.")
@click.option("--tried", default="", help="What has been tried.")
@click.option("--needed", default="", help="What is needed from the next tier.")
@click.option("--deadline", default="", help="By when.")
@action_options
@click.pass_context
def tickets_escalate(ctx: click.Context, ref: str, tier: int | None, reason: str, impact: str, tried: str,
                     needed: str, deadline: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Ask for escalation explicitly (as #escalate in a reply)."""
    fields = {"impact": impact, "tried": tried, "needed": needed, "deadline": deadline}
    body = "\n".join(f"{key}: {value}" for key, value in fields.items() if value)
    _act(ctx, "escalate", ref, actor, f"{tier} {reason}".strip() if tier else reason, body, force=force,
         as_json=as_json)


@command(tickets_group, "assign", now=True)
@click.argument("ref")
@click.argument("assignee", metavar="me|ADDRESS")
@action_options
@click.pass_context
def tickets_assign(ctx: click.Context, ref: str, assignee: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Give the ticket an owner from a tier roster."""
    _act(ctx, "assign", ref, actor, assignee, force=force, as_json=as_json)


@command(tickets_group, "reply", now=True, short_help="Answer the customer, threaded into their conversation.")
@click.argument("ref")
@click.argument("text")
@action_options
@click.pass_context
def tickets_reply(ctx: click.Context, ref: str, text: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Answer the customer from the support address, threaded into their conversation."""
    _act(ctx, "reply", ref, actor, text, force=force, as_json=as_json)


@command(tickets_group, "severity", now=True)
@click.argument("ref")
@click.argument("level")
@action_options
@click.pass_context
def tickets_severity(ctx: click.Context, ref: str, level: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Change a ticket's severity."""
    _act(ctx, "severity", ref, actor, level, force=force, as_json=as_json)


@command(tickets_group, "wait", now=True, short_help="Waiting on the customer: clocks pause until they write.")
@click.option("--note", default="", help="What the customer was asked.")
@click.argument("ref")
@action_options
@click.pass_context
def tickets_wait(ctx: click.Context, ref: str, note: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Waiting on the customer: business-time clocks pause until they write."""
    _act(ctx, "wait", ref, actor, note, force=force, as_json=as_json)


@command(tickets_group, "close", now=True)
@click.argument("ref")
@action_options
@click.pass_context
def tickets_close(ctx: click.Context, ref: str, actor: str | None, force: bool, as_json: bool) -> None:
    """Close a resolved ticket."""
    _act(ctx, "close", ref, actor, "", force=force, as_json=as_json)


@command(tickets_group, "snooze", now=True)
@click.argument("ref")
@click.argument("duration")
@action_options
@click.pass_context
def tickets_snooze(ctx: click.Context, ref: str, duration: str, actor: str | None, force: bool, as_json: bool) -> None:
    """No reminders for DURATION: 2h, 1d, at most 7d."""
    _act(ctx, "snooze", ref, actor, duration, force=force, as_json=as_json)


def _moment(option: str, value: str | None) -> Any:
    if not value:
        return None
    try:
        return clock.parse_time(value)
    except clock.BadTime as error:
        raise BadInput(f"{option}: {error} (a date like 2026-11-01 works too)") from None


@command(main, "report", now=True, short_help="What escalated and why, how fast, and SLA breaches.")
@click.option("--since", metavar="DATE", help="Tickets opened from this date or time (default: 30 days before --until).")
@click.option("--until", metavar="DATE", help="... and before this date or time (default: now).")
@click.option("--drills", "include_drills", is_flag=True, help="Count drill tickets too (left out by default).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="Also write the report with charts as one self-contained HTML file (reads offline, prints well).")
@json_option
@click.pass_context
def report_command(ctx: click.Context, since: str | None, until: str | None, include_drills: bool,
                   html_file: Path | None, as_json: bool) -> None:
    """What escalated and why: per tier and rule, time to acknowledge and resolve, SLA breaches,
    reminders before #ack, the top tier, recurring issues, and who is behind the escalations."""
    from escalate.reports import report
    from escalate.reports import html as report_html
    from escalate.reports import views

    now = clock.now()
    start, end = _moment("--since", since), _moment("--until", until) or now
    if start is not None and start >= end:
        raise BadInput(f"--since ({start.isoformat()}) must be before --until ({end.isoformat()})")
    app = _open(ctx)
    build = functools.partial(report.build, app.ruleset, since=start, until=end, now=now, include_drills=include_drills)
    if sys.stderr.isatty():  # a person waiting on a large history sees the stages; scripts get no bar noise
        with click.progressbar(length=len(report.STAGES), label="building the report", file=sys.stderr,
                               item_show_func=lambda name: name) as bar:
            data = build(progress=lambda name, done: bar.update(done - bar.pos, name))
    else:
        data = build()
    if as_json:
        _emit(data, True)
    else:
        views.report(data)
    if html_file is not None:
        try:
            html_file.write_text(report_html.render(data, generated_at=clock.shown(now)),
                                 encoding="utf-8")
        except OSError as error:
            raise RuntimeFailure(f"cannot write {html_file}: {error.strerror}; choose a writable path for --html") from None
        click.echo(f"wrote {html_file} (open it in a browser; it needs no network)", err=as_json)


def _drill(ctx: click.Context, tiers: tuple[int, ...], as_json: bool) -> None:
    """Rehearse an escalation: `--tier N` starts a drill; `drill report` shows how fast each tier acknowledged."""
    from escalate.engine import drill

    if ctx.invoked_subcommand is not None:
        if tiers:
            raise BadInput("--tier starts a drill; leave it out with `escalate drill report`")
        return
    if not tiers:
        raise BadInput("give the tier to rehearse, e.g. `escalate drill --tier 1`, "
                       "or see past drills with `escalate drill report`")
    app = _open(ctx)
    try:
        for level in tiers:  # every tier checked before any drill starts
            drill.tier_of(app.ruleset, level)
    except drill.DrillError as error:
        raise BadInput(str(error)) from None
    started = [drill.start(app.ruleset, app.renderer, app.secret, level, clock.now(),
                           started_by=f"cli:{getpass.getuser()}") for level in tiers]
    if as_json:
        _emit(started, True)
        return
    for d in started:
        click.echo(f"Drill {d['ref']} for tier {d['tier']} ({d['tier_name']}): escalation mail "
                   f"{d['outbox_status']} to {d['group']} (outbox #{d['outbox_id']}), marked DRILL in subject and body."
                   + ("" if d["outbox_status"] == "queued" else
                      f" Not sent: see why with `escalate outbox show {d['outbox_id']}`."))
    click.echo("The daemon sends it with its next send (or run `escalate run --once`). Tier members reply #ack to "
               "that mail, then #resolve to close the drill.\nSee how fast each tier acknowledged with "
               "`escalate drill report`.")


drill_group = main.group(
    "drill", invoke_without_command=True,
    short_help="Rehearse an escalation; see how fast each tier answered.")(now_option(_translate_errors(click.pass_context(
    json_option(click.option("--tier", "tiers", type=int, multiple=True, metavar="N",
                             help="The tier level to rehearse (repeat for several tiers).")(_drill))))))


@command(drill_group, "report", short_help="Every drill: who acknowledged, how fast, per tier.")
@json_option
@click.pass_context
def drill_report(ctx: click.Context, as_json: bool) -> None:
    """Every drill: when its mail went out, who acknowledged, how fast; per tier the median and slowest."""
    from escalate.engine import drill
    from escalate.reports import views

    app = _open(ctx)
    data = drill.results(app.ruleset)
    if as_json:
        _emit(data, True)
    else:
        views.drill_report(data)


@main.group("rules")
def rules_group() -> None:
    """Check, print, explain and replay the rules.

    Every rules command reads the rules file given as its last argument, FILE (default: ESCALATE_RULES,
    else ./rules.yaml)."""


def rules_file_argument(function: Callable) -> Callable:
    """The one way every `rules` subcommand is given its rules file: an optional last argument."""
    return click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)(function)


@command(rules_group, "check", short_help="Validate the rules: file, line and reason of each error.")
@rules_file_argument
@click.option("--notes", "all_notes", is_flag=True,
              help="List every d/w duration whose meaning changed when they became working days.")
@json_option
@click.pass_context
def rules_check(ctx: click.Context, file: Path | None, all_notes: bool, as_json: bool) -> None:
    """Validate rules.yaml; every error names the file, line and reason (exit 2 on errors)."""
    from escalate.ops.rulescheck import check

    settings = _settings_or_none(ctx)
    path = file or (settings.rules_path if settings else Path("rules.yaml"))
    result = check(path, settings.templates_dir if settings else None, all_notes=all_notes)
    if as_json:
        _emit(result, True)
    else:
        for issue in result["errors"]:
            click.echo(issue, err=True)
    if result["errors"]:
        where = f" and the templates in {result['templates']}" if result["templates"] else ""
        raise BadInput(f"{len(result['errors'])} error{'s' if len(result['errors']) != 1 else ''} in {path}{where}")
    if not as_json:
        click.echo(f"{path}: ok")
        for line in result["notes"]:
            click.echo(line)


def _settings_or_none(ctx: click.Context) -> Settings | None:
    try:
        return _settings(ctx)
    except ConfigError:
        return None


def _ruleset_from(ctx: click.Context, file: Path | None):
    """The rules in FILE, or in ESCALATE_RULES; RulesError (exit 2) lists every problem."""
    from escalate.rules.loader import load_ruleset

    settings = _settings_or_none(ctx)
    path = file or (settings.rules_path if settings else Path("rules.yaml"))
    ruleset = load_ruleset(path, template_names=Renderer(settings.templates_dir if settings else None).names())
    clock.set_display_zone(ruleset.timezone)  # simulate and doc show times in the rules' zone
    return ruleset


@command(rules_group, "matrix")
@rules_file_argument
@json_option
@click.pass_context
def rules_matrix(ctx: click.Context, file: Path | None, as_json: bool) -> None:
    """The decision matrix (severity × time → tier) as a table."""
    from escalate.reports import views
    from escalate.reports.procedure import matrix_table

    ruleset = _ruleset_from(ctx, file)
    _emit(matrix_table(ruleset), True) if as_json else views.matrix(ruleset)


@command(rules_group, "explain", now=True, short_help="Why a ticket is where it is, and what happens next.")
@click.argument("ref")
@rules_file_argument
@json_option
@click.pass_context
def rules_explain(ctx: click.Context, ref: str, file: Path | None, as_json: bool) -> None:
    """Why a ticket is where it is: matching rules, running clocks, what happens next and when."""
    from escalate.reports.explain import explain, render_text

    _open_db(ctx)
    ruleset = _ruleset_from(ctx, file)
    report = explain(queries.get_ticket(ref), ruleset, clock.now())
    _emit(report, True) if as_json else click.echo(render_text(report))


@command(rules_group, "simulate", now=True, short_help="Replay stored tickets through the rules in FILE.")
@click.option("--since", required=True, metavar="DATE", help="Replay tickets created since this ISO-8601 time.")
@rules_file_argument
@click.option("--rules", "rules_path", type=click.Path(dir_okay=False, path_type=Path), hidden=True,
              help="The candidate rules file, as the argument FILE (kept for scripts written before).")
@json_option
@click.pass_context
def rules_simulate(ctx: click.Context, since: str, file: Path | None, rules_path: Path | None, as_json: bool) -> None:
    """Replay stored tickets through the rules in FILE: what would have escalated, and how it differs."""
    from escalate.reports.simulate import show, simulate

    if file and rules_path:
        raise click.UsageError("give the rules file once: as FILE (--rules is its old spelling)")
    ruleset = _ruleset_from(ctx, file or rules_path)
    _open_db(ctx)
    start = clock.parse_time(since)
    if sys.stderr.isatty():  # a person replaying a long history sees it move; scripts get no bar noise
        with click.progressbar(length=1, label="replaying the history", file=sys.stderr) as bar:
            def advance(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)
            report = simulate(ruleset, start, clock.now(), progress=advance)
    else:
        report = simulate(ruleset, start, clock.now())
    _emit(report, True) if as_json else show(report)


@command(rules_group, "doc")
@rules_file_argument
@click.pass_context
def rules_doc(ctx: click.Context, file: Path | None) -> None:
    """The escalation procedure as Markdown, generated from the rules.

    Markdown is its format, so it has no --json (`rules matrix --json` gives the matrix as data)."""
    from escalate.reports.procedure import procedure_markdown

    click.echo(procedure_markdown(_ruleset_from(ctx, file), {c.name: c.description for c in commands.COMMANDS.values()}),
               nl=False)


@main.group("outbox")
def outbox_group() -> None:
    """Queued, sent and failed mail."""


OUTBOX_STATUSES = ["queued", "sent", "failed", "suppressed", "cancelled"]


@command(outbox_group, "list")
@click.option("--status", type=click.Choice(OUTBOX_STATUSES),
              help="Only mail in this state: queued, sent, failed (for good), suppressed (a loop cap) or cancelled.")
@click.option("--since", metavar="DATE", help="Only mail queued from this date or time on.")
@click.option("--limit", type=click.IntRange(min=0), default=None, metavar="N",
              help=f"At most the N newest mails (default: {PEOPLE_LIMIT} in the table, all with --json; 0 = all).")
@json_option
@click.pass_context
def outbox_list(ctx: click.Context, status: str | None, since: str | None, limit: int | None, as_json: bool) -> None:
    """Mail escalate has queued or sent, oldest first."""
    from escalate.reports import views

    start = _moment("--since", since)
    _open_db(ctx)
    if limit is None:
        limit = 0 if as_json else PEOPLE_LIMIT
    rows, total = queries.list_outbox(status, since=start, limit=limit or None)
    _emit(rows, True) if as_json else views.outbox_table(rows, total)


@command(outbox_group, "show", short_help="One mail with each recipient's delivery status.")
@click.argument("outbox_id", metavar="ID", type=int)
@json_option
@click.pass_context
def outbox_show(ctx: click.Context, outbox_id: int, as_json: bool) -> None:
    """One queued or sent mail with each recipient's delivery status and last SMTP error."""
    from escalate.reports import views

    _open_db(ctx)
    detail = queries.show_outbox(outbox_id)
    _emit(detail, True) if as_json else views.outbox_detail(detail)


@command(outbox_group, "retry", now=True, short_help="Queue failed mail again (never to those who got it).")
@click.argument("ids", nargs=-1, type=int)
@json_option
@click.pass_context
def outbox_retry(ctx: click.Context, ids: tuple[int, ...], as_json: bool) -> None:
    """Queue failed mail again (all failed rows, or the given ids; naming a suppressed row overrides
    its loop cap). Recipients who already got it are not sent it again."""
    _open_db(ctx)
    count = outbox.retry(list(ids) or None, clock.now())
    _emit({"queued": count}, True) if as_json else click.echo(f"{count} queued for sending")


@command(outbox_group, "cancel", now=True, short_help="Stop sending the given queued mail.")
@click.argument("ids", nargs=-1, type=int, required=True)
@json_option
@click.pass_context
def outbox_cancel(ctx: click.Context, ids: tuple[int, ...], as_json: bool) -> None:
    """Stop sending the given queued mail (recipients not yet reached are cancelled)."""
    _open_db(ctx)
    count = outbox.cancel(list(ids), clock.now())
    _emit({"cancelled": count}, True) if as_json else click.echo(f"{count} cancelled")


@main.group("quarantine")
def quarantine_group() -> None:
    """Mail that could not be processed."""


@command(quarantine_group, "list")
@json_option
@click.pass_context
def quarantine_list(ctx: click.Context, as_json: bool) -> None:
    """Quarantined mail with the reason."""
    from escalate.reports import views

    _open_db(ctx)
    rows = queries.list_quarantine()
    _emit(rows, True) if as_json else views.quarantine_table(rows)


@command(quarantine_group, "show")
@click.argument("record_id", metavar="ID", type=int)
@click.option("--raw", "as_raw", is_flag=True, help="Write the mail's raw bytes to stdout (e.g. > mail.eml).")
@json_option
@click.pass_context
def quarantine_show(ctx: click.Context, record_id: int, as_raw: bool, as_json: bool) -> None:
    """One quarantined mail: why, from where, and its headers."""
    from escalate.ingest import quarantine
    from escalate.reports import views

    _open_db(ctx)
    if as_raw:
        click.echo(quarantine.raw(record_id), nl=False)  # bytes go to the binary stream as they are
        return
    detail = quarantine.show(record_id)
    _emit(detail, True) if as_json else views.quarantine_detail(detail)


@command(quarantine_group, "retry", now=True, short_help="Process held mail again, e.g. after an upgrade.")
@click.argument("ids", nargs=-1, type=int)
@click.option("--force", is_flag=True, help="Also process records that were already retried.")
@json_option
@click.pass_context
def quarantine_retry(ctx: click.Context, ids: tuple[int, ...], force: bool, as_json: bool) -> None:
    """Process held mail again (all held records, or the given ids), e.g. after an upgrade."""
    from escalate.ingest import quarantine
    from escalate.ingest.poller import options_for

    app = _open(ctx)
    done = quarantine.retry(list(ids) or None, app.ruleset, app.renderer, app.secret, clock.now(),
                            options_for(app.settings), force=force)
    if as_json:
        _emit([{"id": record_id, "outcome": outcome} for record_id, outcome in done], True)
        return
    for record_id, outcome in done:
        click.echo(f"{record_id}: {outcome}")
    if not done:
        click.echo("nothing held")


@command(main, "import", now=True, short_help="Bring in history from an mbox file or a Maildir.")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--open-since", metavar="DATE",
              help="Conversations whose last message is older are imported closed and never evaluated "
                   "(default: now minus the longest resolution target).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
@click.pass_context
def import_command(ctx: click.Context, path: Path, open_since: str | None, as_json: bool) -> None:
    """Bring in history from an mbox file or a Maildir: each message at its own Date, threaded,
    old conversations closed, recent ones open with their real ages (deduplicated as ingest does)."""
    from escalate.ingest import history
    from escalate.ingest import mailfiles
    from escalate.ingest.poller import options_for

    cutoff = _moment("--open-since", open_since)
    try:
        store = mailfiles.open_store(path)
    except mailfiles.NotAMailStore as error:
        raise BadInput(str(error)) from None
    try:
        app = _open(ctx)
        keys = mailfiles.ordered_keys(store)
        with click.progressbar(length=len(keys), label=f"importing {path.name}", file=sys.stderr) as bar:
            report = history.import_history(keys, lambda key: mailfiles.read(store, key), app.ruleset, app.renderer,
                                            app.secret, clock.now(), options_for(app.settings), open_since=cutoff,
                                            progress=bar.update)
    finally:
        store.close()
    result = report.result
    summary = {"messages": len(keys), "outcomes": dict(result.outcomes), "tickets_created": len(result.tickets_created),
               "open_since": clock.iso(report.open_since), "opened": report.opened, "closed": report.closed}
    if as_json:
        _emit(summary, True)
        return
    counts = ", ".join(f"{n} {k}" for k, n in sorted(result.outcomes.items())) or "nothing"
    click.echo(f"imported {len(keys)} messages from {path}: {counts}")
    click.echo(f"opened {_count(len(report.opened), 'ticket', 'tickets')} with mail since "
               f"{clock.shown(report.open_since)}" + (f": {_refs(report.opened)}" if report.opened else ""))
    click.echo(f"closed {_count(len(report.closed), 'ticket', 'tickets')} whose last message is older "
               "(history: never evaluated)" + (f": {_refs(report.closed)}" if report.closed else ""))


def _refs(refs: list[str], shown: int = 20) -> str:
    return ", ".join(refs[:shown]) + (f" and {len(refs) - shown} more (--json lists all)" if len(refs) > shown else "")


@command(main, "demo", short_help="Run the whole loop on loopback servers with simulated time.")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the demo's database and server files here (default: a new temp dir).")
@click.option("--rules", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Rules to demonstrate (default: the example rules.yaml).")
def demo_command(workdir: Path | None, rules: Path | None) -> None:
    """Run the whole loop on loopback servers with simulated time (needs Debian's dovecot-imapd).

    A narrated story for people: it has no --json (its state stays behind for the other commands)."""
    from escalate.testing.demo import run_demo  # the demo pulls in the loopback servers; keep them out of normal runs

    kept = run_demo(workdir, rules or example_rules_path())
    click.echo(f"\nThe demo's state is in {kept} (inspect it with "
               f"`escalate --env-file {kept / 'escalate.env'} tickets list`).")


@main.group("chat", short_help="Chat channels beside the email groups.")
def chat_group() -> None:
    """Chat channels beside the email groups (ESCALATE_CHAT_<NAME>=<Apprise URL>)."""


@command(chat_group, "list")
@json_option
@click.pass_context
def chat_list(ctx: click.Context, as_json: bool) -> None:
    """The configured channels (URLs redacted) and each one's last delivery."""
    from escalate.outbound import chatsend
    from escalate.reports import views

    _open_db(ctx)
    found = chatsend.channels()
    _emit(found, True) if as_json else views.chat_table(found)


@command(chat_group, "test", short_help="Post a test message to channel NAME now.")
@click.argument("name")
@json_option
@click.pass_context
def chat_test(ctx: click.Context, name: str, as_json: bool) -> None:
    """Post a test message to channel NAME now and print the service's answer."""
    from escalate.outbound import chat
    from escalate.outbound import chatsend

    _settings(ctx)  # the log redactor learns the channel URLs
    name = name.lower()
    problem = chat.channel_problem(name)
    if problem:
        raise click.UsageError(problem)
    outcome = chatsend.post(chat.channel_url(name), "escalate test message",
                            f"A test from escalate: channel **{name}** reaches this chat.")
    if as_json:
        _emit({"channel": name, "posted": outcome.ok, "reason": None if outcome.ok else outcome.reason}, True)
    elif outcome.ok:
        click.echo(f"{name}: posted; the service accepted it")
    else:
        click.echo(f"{name}: not posted: {outcome.reason}", err=True)
    if not outcome.ok:
        ctx.exit(1)
