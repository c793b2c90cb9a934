"""Tables for people (rich): tickets, one ticket's story, the report and drill results.

Scripts use `--json`; these views are for reading. rich fits the columns to the terminal and
wraps long subjects instead of cutting them; piped into a file or `less` it writes plain text at
a fixed width with no colour codes, so the output can be pasted into a mail or a chat.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
from typing import Any, Iterable, Iterator

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .clock import shown_iso

PIPE_WIDTH = 140  # columns when the output is not a terminal (COLUMNS overrides)
DRILL = "DRILL"


def console() -> Console:
    """A console on the current stdout (click's test runner swaps it), sized for a terminal or a pipe."""
    stream = sys.stdout
    terminal = stream.isatty()
    if terminal:
        width = shutil.get_terminal_size((PIPE_WIDTH, 24)).columns
    else:
        width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else PIPE_WIDTH
    return Console(file=stream, width=width, highlight=False, emoji=False, no_color=not terminal,
                   force_terminal=terminal, soft_wrap=False)


def duration(seconds: float | None) -> str:
    """12s, 14m, 3h 20m, 2d 4h: two units at most, enough to compare at a glance."""
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def percent(value: float | None) -> str:
    """A share from the JSON views (0.75) as a person reads it, "75%", or "-" when there is none."""
    return "-" if value is None else f"{value * 100:.0f}%"


def when(value: str | None) -> str:
    """An ISO time from the JSON views as the team reads it, "2026-11-02 10:00 CET", or "-"."""
    return shown_iso(value)


def _table(title: str | None, *columns: str, right: Iterable[str] = (), wrap: Iterable[str] = ()) -> Table:
    """A plain table; only the last column (subject, details) and those in `wrap` may wrap, so
    references, times and counts stay on one line each."""
    table = Table(title=title, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False)
    right, wrap = set(right), set(wrap) | {columns[-1]}
    for column in columns:
        table.add_column(column, justify="right" if column in right else "left", overflow="fold",
                         no_wrap=column not in wrap, min_width=20 if column == columns[-1] and len(columns) > 3 else None)
    return table


def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


# -- tickets ---------------------------------------------------------------------------------------

def ticket_ref(row: dict[str, Any]) -> Text:
    ref = Text(row["ref"] or "?")
    if row.get("drill"):
        ref.append(f" {DRILL}", style="bold magenta")
    return ref


RICH_ROWS = 200  # a table rich lays out whole (~1 ms a row); a longer listing is written as plain columns


def tickets_table(rows: Iterable[dict[str, Any]], total: int | None = None) -> None:
    """The tickets as a table. Up to RICH_ROWS it is rich's, fitted to the terminal; a longer
    listing (`--limit 0` over tens of thousands) is written a row at a time in plain columns,
    sized by its first rows, so it costs what the rows do and holds none of them."""
    out = console()
    rows = iter(rows)
    first = list(itertools.islice(rows, RICH_ROWS + 1))
    if not first:
        out.print("No tickets match. (Without filters `escalate tickets list` shows every ticket.)")
        return
    if len(first) > RICH_ROWS:
        shown = _plain_tickets(itertools.chain(first, rows))
    else:
        table = _table(None, "Ref", "Status", "Severity", "Tier", "Ladder", "Msgs", "Opened", "Next due", "Requester",
                       "Subject", right=("Tier", "Msgs"), wrap=("Requester",))
        for row in first:
            table.add_row(ticket_ref(row), row["status"], row["severity"], _cell(row["tier"]), _cell(row.get("ladder")),
                          str(row["message_count"]), when(row["created_at"]), when(row["next_due_at"]), row["requester"],
                          row["subject"])
        out.print(table)
        shown = len(first)
    if total is not None and total > shown:
        out.print(f"Showing {shown} of {total} tickets; use --limit 0 for all, or narrow with filters.")


_PLAIN_COLUMNS = ("Ref", "Status", "Severity", "Tier", "Ladder", "Msgs", "Opened", "Next due", "Requester", "Subject")


def _plain_row(row: dict[str, Any]) -> tuple[str, ...]:
    return (row["ref"] or "?") + (f" {DRILL}" if row.get("drill") else ""), row["status"], row["severity"], \
        _cell(row["tier"]), _cell(row.get("ladder")), str(row["message_count"]), when(row["created_at"]), \
        when(row["next_due_at"]), \
        row["requester"], " ".join((row["subject"] or "").split())


def _plain_tickets(rows: Iterator[dict[str, Any]]) -> int:
    """Rows as columns two spaces apart, each line written as it comes; returns how many."""
    write = sys.stdout.write
    head = [_plain_row(row) for row in itertools.islice(rows, RICH_ROWS)]
    widths = [max(len(column), *(len(cells[i]) for cells in head)) for i, column in enumerate(_PLAIN_COLUMNS[:-1])]
    right = {3, 5}  # tier, messages

    def line(cells: tuple[str, ...]) -> str:
        fitted = [cell.rjust(width) if i in right else cell.ljust(width)
                  for i, (cell, width) in enumerate(zip(cells, widths))]
        return "  ".join([*fitted, cells[-1]]).rstrip() + "\n"

    write(line(_PLAIN_COLUMNS))
    count = 0
    for cells in itertools.chain(head, map(_plain_row, rows)):
        write(line(cells))
        count += 1
    return count


def ticket_detail(detail: dict[str, Any]) -> None:
    out = console()
    title = Text(f"{detail['ref']}  ", style="bold")
    title.append(detail["subject"])
    if detail.get("drill"):
        title.append(f"  [{DRILL}: a practice escalation, no customer is waiting]", style="bold magenta")
    out.print(title)
    facts = _table(None, "", "")
    facts.show_header = False
    for label, key in (("Requester", "requester"), ("Status", "status"), ("Severity", "severity"), ("Tier", "tier"),
                       ("Assignee", "assignee"), ("Opened", "created_at"), ("Acknowledged", "acknowledged_at"),
                       ("Resolved", "resolved_at"), ("Next due", "next_due_at")):
        value = detail.get(key)
        if key.endswith("_at"):
            value = when(value)
        if key == "acknowledged_at" and detail.get("acknowledged_by"):
            value = f"{value} by {detail['acknowledged_by']}"
        facts.add_row(label, _cell(value))
    ladder = detail.get("ladder")
    if ladder:
        text = f"{ladder['state']} at tier {ladder['tier']}, {ladder['reminders']} reminders"
        if ladder["state"] == "exhausted":
            text = f"exhausted at tier {ladder['tier']} after {ladder['reminders']} reminders: nobody acknowledged"
        elif ladder["state"] == "active" and ladder.get("next_step_at"):
            text += f", next step {when(ladder['next_step_at'])}"
        facts.add_row("Ladder", text + (f" (why: {', '.join(ladder['reasons'])})" if ladder.get("reasons") else ""))
    out.print(facts)

    out.print(Text(f"Conversation ({len(detail['messages'])} messages)", style="bold"))
    for message in detail["messages"]:
        head = Text(f"  {when(message['received_at'])}  {message['kind']:<8} ", style="dim")
        head.append(f"{message['from'] or 'unknown'}: {message['subject']}")
        out.print(head)
        text = (message.get("text") or "").strip()
        lines = text.splitlines()
        for line in lines[:8]:
            out.print(Text("      " + line))
        if len(lines) > 8:
            out.print(Text(f"      … {len(lines) - 8} more lines (--json has the whole text)", style="dim"))
    if not detail["messages"]:
        out.print("  (no messages)")

    escalations = _table("Escalations", "Rule", "Tier", "Step", "State", "Started", "Acknowledged", right=("Tier", "Step"))
    for e in detail["escalations"]:
        acked = when(e["acknowledged_at"]) + (f" by {e['acknowledged_by']}" if e.get("acknowledged_by") else "")
        escalations.add_row(e["rule"], _cell(e["tier"]), _cell(e["step"]), e["state"], when(e["started_at"]),
                            acked if e["acknowledged_at"] else "-")
    out.print(escalations if detail["escalations"] else Text("Escalations: none", style="bold"))

    notifications = detail.get("notifications") or []
    if notifications:
        table = _table("Notifications", "#", "Kind", "Tier", "Status", "Queued", "Sent", "Subject", right=("#", "Tier"))
        for n in notifications:
            table.add_row(str(n["id"]), n["kind"], _cell(n["tier"]), n["status"], when(n["created_at"]),
                          when(n["sent_at"]), n["subject"])
        out.print(table)

    trail = _table("Audit trail", "When", "Who", "What", "Rule", "Details")
    for e in detail["events"]:
        trail.add_row(when(e["at"]), e["actor"], e["action"], _cell(e["rule"]), _details(e.get("detail") or {}))
    out.print(trail)


def _details(detail: dict[str, Any]) -> str:
    """The audit detail that explains the event; message ids and the like stay in --json."""
    keep = ("reason", "note", "text", "via", "tier", "step", "severity", "previous", "why", "kind", "commands")
    parts = [f"{k}={detail[k]}" for k in keep if detail.get(k) not in (None, "", [])]
    return ", ".join(parts)


# -- the report ------------------------------------------------------------------------------------

def report(data: dict[str, Any]) -> None:
    out = console()
    window, totals = data["window"], data["totals"]
    top = data["top_tier"]
    out.print(Text(f"Escalation report: tickets opened {when(window['since'])} to {when(window['until'])} "
                   f"({'drills included' if window['drills_included'] else 'drills left out'})", style="bold"))
    out.print(f"{totals['tickets']} tickets, {totals['escalated']} escalated, {totals['acknowledged']} acknowledged, "
              f"{totals['resolved']} resolved, {totals['reached_top_tier']} reached tier {top['level']} ({top['name']}), "
              f"{totals.get('ladder_exhausted', 0)} went unanswered to the end of their ladder.")
    if not totals["tickets"]:
        out.print("No tickets were opened in this window; try an earlier --since.")
        return
    if "trend" in data:
        _trend(out, data["trend"])

    table = _table("Escalations per tier", "Tier", "Name", "Tickets", "Notifications", "Reminders",
                   right=("Tier", "Tickets", "Notifications", "Reminders"))
    for row in data["escalations_per_tier"]:
        table.add_row(str(row["tier"]), row["name"], str(row["tickets"]), str(row["notifications"]), str(row["reminders"]))
    out.print(table)

    table = _table("Escalations per rule", "Rule", "Tickets", "Acknowledged", "Ack median", "Ack p90",
                   right=("Tickets", "Acknowledged", "Ack median", "Ack p90"))
    for row in data["escalations_per_rule"]:
        table.add_row(row["rule"], str(row["tickets"]), str(row["acknowledged"]), duration(row["ack_median_seconds"]),
                      duration(row["ack_p90_seconds"]))
    out.print(table if data["escalations_per_rule"] else Text("Escalations per rule: none", style="bold"))

    for key, title in (("time_to_acknowledge", "Time to acknowledge"), ("time_to_resolve", "Time to resolve")):
        table = _table(title, "By", "", "Count", "Median", "p90", right=("Count", "Median", "p90"))
        for row in data[key]["by_tier"]:
            table.add_row("tier", row["name"] if row["tier"] is None else f"{row['tier']} {row['name']}",
                          str(row["count"]), duration(row["median_seconds"]), duration(row["p90_seconds"]))
        for row in data[key]["by_severity"]:
            table.add_row("severity", row["severity"], str(row["count"]), duration(row["median_seconds"]),
                          duration(row["p90_seconds"]))
        out.print(table)

    table = _table("SLA breaches (working time of each severity's calendar)", "Severity", "Tickets",
                   "First response", "Breached", "Resolution", "Breached",
                   right=("Tickets", "First response", "Breached", "Resolution"))
    for row in data["sla_breaches"]["by_severity"]:
        table.add_row(row["severity"], str(row["tickets"]), duration(row["first_response_target_seconds"]),
                      f"{row['first_response_breached']} ({percent(row.get('first_response_breach_share'))})",
                      duration(row["resolution_target_seconds"]),
                      f"{row['resolution_breached']} ({percent(row.get('resolution_breach_share'))})")
    out.print(table)

    repeats = data["repeats_before_ack"]
    if repeats["histogram"]:
        share = repeats["first_notice_share"]
        out.print(Text("Repeats before an acknowledgement", style="bold"))
        out.print(f"{share * 100:.0f}% acknowledged at the first notice; {repeats['mean']} reminders on average.")
        table = _table(None, "Reminders before #ack", "Tickets", right=("Reminders before #ack", "Tickets"))
        for row in repeats["histogram"]:
            table.add_row(str(row["repeats"]), str(row["tickets"]))
        out.print(table)

    table = _table(f"Reached tier {top['level']} ({top['name']}): {top['count']}", "Ref", "Severity", "Status",
                   "Opened", "Requester", "Subject")
    for t in top["tickets"]:
        table.add_row(t["ref"], t["severity"], t["status"], when(t["created_at"]), t["requester"], t["subject"])
    out.print(table if top["tickets"] else Text(f"Reached tier {top['level']} ({top['name']}): none", style="bold"))
    if top["count"] > len(top["tickets"]):
        out.print(f"(the {len(top['tickets'])} most recent of {top['count']}; --json lists the same)")

    table = _table("Recurring issues (same subject)", "Subject", "Tickets", "Customers", "Escalated", "Latest",
                   right=("Tickets", "Customers", "Escalated"))
    for row in data["recurring_issues"]:
        table.add_row(row["subject"], str(row["tickets"]), str(row["customers"]), str(row["escalated"]),
                      _cell(row["latest_ref"]))
    out.print(table if data["recurring_issues"] else Text("Recurring issues: none", style="bold"))

    if not data["top_senders"]:
        out.print(Text("Behind most escalations: no escalated tickets", style="bold"))
    else:
        # two tables: a sender and a domain on one row would read as one fact
        out.print(Text("Senders behind most escalations", style="bold"))
        table = _table(None, "Sender", "Escalated", right=("Escalated",))
        for row in data["top_senders"]:
            table.add_row(row["requester"], str(row["escalated_tickets"]))
        out.print(table)
        out.print(Text("Domains behind most escalations", style="bold"))
        table = _table(None, "Domain", "Escalated", "Senders", right=("Escalated", "Senders"))
        for row in data["top_domains"]:
            table.add_row(row["domain"], str(row["escalated_tickets"]), str(row["senders"]))
        out.print(table)


def _trend(out: Console, trend: dict[str, Any]) -> None:
    """Per week (or day) in the team's zone, this period beside the same stretch one period earlier."""
    unit = trend["unit"]
    out.print(Text(f"Trend per {unit} ({trend['zone']}); \"before\": the same stretch one period earlier",
                   style="bold"))
    numbers = ("Tickets", "Escalated", "Breached", "Ack median", "Before: tickets", "escalated", "breached",
               "ack median")
    table = _table(None, unit.capitalize(), *numbers, right=numbers)

    def cells(b: dict[str, Any]) -> list[str]:
        return [str(b["tickets"]), str(b["escalations"]), f"{b['breaches']} ({percent(b['breach_share'])})",
                duration(b["ack_median_seconds"])]
    for bucket in trend["buckets"]:
        table.add_row(bucket["label"] + ("" if bucket["whole"] else " (part)"), *cells(bucket),
                      *cells(bucket["previous"]))
    table.add_row("whole period", *cells(trend["period"]), *cells(trend["previous_period"]))
    out.print(table)


# -- drills ----------------------------------------------------------------------------------------

def drill_report(data: dict[str, Any]) -> None:
    out = console()
    if not data["drills"]:
        out.print("No drills yet. Start one with `escalate drill --tier 1`.")
        return
    table = _table("Drills by tier", "Tier", "Name", "Drills", "Acknowledged", "Median", "Slowest", "Last drill",
                   right=("Tier", "Drills", "Acknowledged", "Median", "Slowest"))
    for row in data["tiers"]:
        table.add_row(str(row["tier"]), row["name"], str(row["drills"]), str(row["acknowledged"]),
                      duration(row["median_seconds"]), duration(row["slowest_seconds"]), when(row["last_started_at"]))
    out.print(table)
    table = _table("Drills", "Ref", "Tier", "Started", "Mail sent", "Acknowledged", "By", "Time to #ack", "Status",
                   right=("Tier", "Time to #ack"))
    for d in data["drills"]:
        table.add_row(d["ref"], str(d["tier"]), when(d["started_at"]), when(d["sent_at"]), when(d["acknowledged_at"]),
                      _cell(d["acknowledged_by"]), duration(d["seconds_to_ack"]) if d["seconds_to_ack"] is not None
                      else "waiting", d["status"])
    out.print(table)

