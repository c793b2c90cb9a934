"""`escalate quarantine …`: mail that could not be processed."""

from __future__ import annotations

import click

from escalate import clock
from escalate.cli.app import _emit, _open, _open_db, command, command_group, json_option
from escalate.reports import queries

quarantine_group = command_group("quarantine", "Mail that could not be processed.")


@command(quarantine_group, "list")
@json_option
@click.pass_context
def quarantine_list(ctx: click.Context, as_json: bool) -> None:
    """Quarantined mail with the reason."""
    from escalate.reports import views

    _open_db(ctx)
    rows = queries.list_quarantine()
    _emit(rows, as_json, views.quarantine_table)


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
    _emit(detail, as_json, views.quarantine_detail)


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
