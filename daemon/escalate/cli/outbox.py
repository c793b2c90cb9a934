"""`escalate outbox …`: queued, sent and failed mail."""

from __future__ import annotations

import click

from escalate import clock
from escalate.cli.app import PEOPLE_LIMIT, _emit, _moment, _open_db, command, command_group, json_option
from escalate.reports import queries

outbox_group = command_group("outbox", "Queued, sent and failed mail.")


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
    _emit(detail, as_json, views.outbox_detail)


@command(outbox_group, "retry", now=True, short_help="Queue failed mail again (never to those who got it).")
@click.argument("ids", nargs=-1, type=int)
@json_option
@click.pass_context
def outbox_retry(ctx: click.Context, ids: tuple[int, ...], as_json: bool) -> None:
    """Queue failed mail again (all failed rows, or the given ids; naming a suppressed row overrides
    its loop cap). Recipients who already got it are not sent it again."""
    from escalate.outbound import outbox

    _open_db(ctx)
    count = outbox.retry(list(ids) or None, clock.now())
    _emit({"queued": count}, True) if as_json else click.echo(f"{count} queued for sending")


@command(outbox_group, "cancel", now=True, short_help="Stop sending the given queued mail.")
@click.argument("ids", nargs=-1, type=int, required=True)
@json_option
@click.pass_context
def outbox_cancel(ctx: click.Context, ids: tuple[int, ...], as_json: bool) -> None:
    """Stop sending the given queued mail (recipients not yet reached are cancelled)."""
    from escalate.outbound import outbox

    _open_db(ctx)
    count = outbox.cancel(list(ids), clock.now())
    _emit({"cancelled": count}, True) if as_json else click.echo(f"{count} cancelled")
