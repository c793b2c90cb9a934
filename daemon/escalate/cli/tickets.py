"""`escalate tickets …`: list, inspect and act on tickets."""

from __future__ import annotations

from typing import Callable

import click

from escalate import clock
from escalate.cli.app import PEOPLE_LIMIT, BadInput, _emit, _emit_json_list, _open, _open_db, command, command_group, json_option
from escalate.reports import queries

tickets_group = command_group("tickets", "List, inspect and act on tickets.")


SORT_KEYS = sorted(queries.TICKET_SORTS)


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
    from escalate.reports import views
    from escalate.store.models import ACTIVE_STATUSES
    from escalate.tickets import sla

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
    roster check a mail reply gets for --as (tickets/actions.py)."""
    from escalate.tickets import actions as ticket_actions

    app = _open(ctx)
    result = ticket_actions.act(name, ref, actor, argument, body, ruleset=app.ruleset, renderer=app.renderer,
                                secret=app.secret, now=clock.now(), force=force)
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


def _simple_action(name: str, doc: str, *value: Callable, short_help: str | None = None) -> None:
    """`escalate tickets NAME REF [VALUE]`: the mail command #NAME from the command line. `value`:
    the click argument or option that gives the command its argument (its parameter is `value`)."""

    def run(ctx: click.Context, ref: str, actor: str | None, force: bool, as_json: bool, value: str = "") -> None:
        _act(ctx, name, ref, actor, value, force=force, as_json=as_json)

    run.__doc__ = doc
    run.__name__ = f"tickets_{name}"
    decorated: Callable = click.pass_context(run)
    for decorator in (action_options, *reversed(value), click.argument("ref")):
        decorated = decorator(decorated)
    command(tickets_group, name, now=True, short_help=short_help)(decorated)


_simple_action("ack", "Acknowledge a ticket: reminders stop.")
_simple_action("resolve", "Resolve a ticket.", click.option("--note", "value", default="", help="What solved it."))
_simple_action("note", "Add an internal note to a ticket.", click.argument("value", metavar="TEXT"))
_simple_action("assign", "Give the ticket an owner from a tier roster.", click.argument("value", metavar="me|ADDRESS"))
_simple_action("reply", "Answer the customer from the support address, threaded into their conversation.",
               click.argument("value", metavar="TEXT"),
               short_help="Answer the customer, threaded into their conversation.")
_simple_action("severity", "Change a ticket's severity.", click.argument("value", metavar="LEVEL"))
_simple_action("wait", "Waiting on the customer: business-time clocks pause until they write.",
               click.option("--note", "value", default="", help="What the customer was asked."),
               short_help="Waiting on the customer: clocks pause until they write.")
_simple_action("close", "Close a resolved ticket.")
_simple_action("snooze", "No reminders for DURATION: 2h, 1d, at most 7d.", click.argument("value", metavar="DURATION"))


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
