"""`escalate report` and `escalate drill …`: what escalated and why, and rehearsals."""

from __future__ import annotations

import functools
import getpass
import sys
from pathlib import Path

import click

from escalate import clock
from escalate.cli.app import BadInput, RuntimeFailure, _emit, _moment, _open, _translate_errors, command, json_option, main, now_option


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
    from escalate.reports import html as report_html
    from escalate.reports import report, views

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
    for level in tiers:  # every tier checked before any drill starts (an unknown one: exit 2)
        drill.tier_of(app.ruleset, level)
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
