"""`escalate run` and `escalate status`: the daemon and what it is doing."""

from __future__ import annotations

import click

from escalate import clock
from escalate.cli.app import RuntimeFailure, _count, _emit, _open, _open_db, command, json_option, main

OUTCOME_WORDS = {"ticket": ("new ticket", "new tickets"), "reply": ("reply", "replies"),
                 "duplicate": ("duplicate", "duplicates"), "own": ("own notification", "own notifications"),
                 "own-address": ("mail from our own address", "mails from our own addresses"),
                 "limited": ("mail on the sender's latest ticket (ticket limit)",
                             "mails on their senders' latest tickets (ticket limit)"),
                 "quarantined": ("quarantined", "quarantined")}


@command(main, "run", now=True, short_help="The daemon: poll, evaluate the rules, send escalations.")
@click.option("--once", is_flag=True, help="One full cycle (ingest, evaluate, send), then exit.")
@click.option("--json", "as_json", is_flag=True, help="With --once: print the cycle's result as JSON.")
@click.pass_context
def run_command(ctx: click.Context, once: bool, as_json: bool) -> None:
    """The daemon: poll the mailbox, evaluate the rules, send escalations."""
    if as_json and not once:
        raise click.UsageError("--json prints the result of one cycle: use it with --once")
    from escalate.ops.instance import InstanceLock
    from escalate.ops.service import Daemon, run_once

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

    settings = _open_db(ctx)
    facts = status.collect(settings, clock.now())
    _emit(facts, as_json, status.show)
    if not facts["daemon"]["running"]:
        ctx.exit(status.NOT_RUNNING)
