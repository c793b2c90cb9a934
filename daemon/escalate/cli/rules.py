"""`escalate rules …`: check, print, explain and replay the rules."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import click

from escalate import clock
from escalate.cli.app import BadInput, _emit, _open_db, _settings, command, command_group, json_option
from escalate.config import ConfigError, Settings
from escalate.reports import queries

rules_group = command_group("rules", "Check, print, explain and replay the rules.\n\n"
                            "Every rules command reads the rules file given as its last argument, FILE "
                            "(default: ESCALATE_RULES,\nelse ./rules.yaml).")


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
    from escalate.outbound.templates import Renderer
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
    _open_db(ctx)  # first: it sets the deployed rules' zone, which the candidate file's then replaces
    ruleset = _ruleset_from(ctx, file or rules_path)
    start = clock.parse_time(since)
    if sys.stderr.isatty():  # a person replaying a long history sees it move; scripts get no bar noise
        with click.progressbar(length=1, label="replaying the history", file=sys.stderr) as bar:
            def advance(done: int, total: int) -> None:
                bar.length = max(total, 1)
                bar.update(done - bar.pos)
            report = simulate(ruleset, start, clock.now(), progress=advance)
    else:
        report = simulate(ruleset, start, clock.now())
    _emit(report, as_json, show)


@command(rules_group, "doc")
@rules_file_argument
@click.pass_context
def rules_doc(ctx: click.Context, file: Path | None) -> None:
    """The escalation procedure as Markdown, generated from the rules.

    Markdown is its format, so it has no --json (`rules matrix --json` gives the matrix as data)."""
    from escalate.reports.procedure import procedure_markdown
    from escalate.tickets import commands

    click.echo(procedure_markdown(_ruleset_from(ctx, file), {c.name: c.description for c in commands.COMMANDS.values()}),
               nl=False)
