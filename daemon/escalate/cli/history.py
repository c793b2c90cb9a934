"""`escalate import`: bring in history from an mbox file or a Maildir."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalate import clock
from escalate.cli.app import _count, _emit, _moment, _open, command, main


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
    from escalate.ingest import history, mailfiles
    from escalate.ingest.poller import options_for

    cutoff = _moment("--open-since", open_since)
    store = mailfiles.open_store(path)
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
