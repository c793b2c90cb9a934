"""The `escalate` command group and what every subcommand shares: options (--now, --json), error
translation to exit statuses, settings, and the table and JSON output.

Each command parses options, calls one library function and formats the result as a table or
`--json`. Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input."""

from __future__ import annotations

import functools
import json
import zoneinfo
from pathlib import Path
from typing import Any, Callable, Iterable

import click
import peewee

from escalate import __version__, clock
from escalate.config import Settings, load_settings
from escalate.errors import EscalateError, InputError
from escalate.ops import logs
from escalate.store import db


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
    # the daemon's modules (IMAP, SMTP, templates: about half of a command's start-up) are imported only by
    # the commands that open the whole app; listings that need only the database start without them
    from escalate.ops.service import open_app

    return open_app(_settings(ctx), create=False)


def _open_db(ctx: click.Context) -> Settings:
    """The database only (a listing works while rules.yaml is broken); times still in the team's zone."""
    settings = _settings(ctx)
    _display_zone_of(settings)
    db.connect(settings.db_url, create=False)
    return settings


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


def _emit(data: Any, as_json: bool, for_people: Callable[[Any], None] | None = None) -> None:
    """`data` as JSON for scripts; for people, `for_people(data)` (a table from views.py), or `data` as it is."""
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif for_people is not None:
        for_people(data)
    else:
        click.echo(data)


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


def command_group(name: str, help: str, **kwargs: Any) -> click.Group:
    """`escalate NAME …`: a group of subcommands that does nothing itself (`help` is its --help)."""
    group = click.Group(name, help=help, **kwargs)
    main.add_command(group)
    return group


def example_rules_path() -> Path:
    packaged = Path(__file__).parents[1] / "data" / "rules.yaml"
    return packaged if packaged.exists() else Path(__file__).resolve().parents[3] / "rules.yaml"


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


PEOPLE_LIMIT = 200  # rows in the table for people unless --limit says otherwise; --json lists all


def _moment(option: str, value: str | None) -> Any:
    if not value:
        return None
    try:
        return clock.parse_time(value)
    except clock.BadTime as error:
        raise BadInput(f"{option}: {error} (a date like 2026-11-01 works too)") from None
