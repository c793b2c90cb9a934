"""What people read of tickets, one ticket's story, the report and drill results, in the one
table style of table.py. Scripts use `--json`; these views are for reading.
"""

from __future__ import annotations

from typing import Any, Iterable

from rich.console import Console
from rich.text import Text

from escalate.reports import table
from escalate.reports.table import Column, console, new, show, text, when

DRILL = "DRILL"


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


# -- tickets ---------------------------------------------------------------------------------------

TICKET_COLUMNS = (
    Column("Ref", lambda row: (row["ref"] or "?") + (f" {DRILL}" if row.get("drill") else "")),
    Column("Status", "status"), Column("Severity", "severity"), Column("Tier", "tier", right=True),
    Column("Ladder", "ladder"), Column("Msgs", "message_count", right=True), Column("Opened", "created_at", time=True),
    Column("Next due", "next_due_at", time=True), Column("Requester", "requester", wrap=True), Column("Subject", "subject"),
)


def tickets_table(rows: Iterable[dict[str, Any]], total: int | None = None) -> None:
    """The tickets as the one table (streamed when there are more than RICH_ROWS)."""
    show(rows, TICKET_COLUMNS, total=total, noun="tickets", more="use --limit 0 for all, or narrow with filters",
               empty="No tickets match. (Without filters `escalate tickets list` shows every ticket.)")


def ticket_detail(detail: dict[str, Any]) -> None:
    out = console()
    title = Text(f"{detail['ref']}  ", style="bold")
    title.append(detail["subject"])
    if detail.get("drill"):
        title.append(f"  [{DRILL}: a practice escalation, no customer is waiting]", style="bold magenta")
    out.print(title)
    facts = new(None, "", "")
    facts.show_header = False
    for label, key in (("Requester", "requester"), ("Status", "status"), ("Severity", "severity"), ("Tier", "tier"),
                       ("Assignee", "assignee"), ("Opened", "created_at"), ("Acknowledged", "acknowledged_at"),
                       ("Resolved", "resolved_at"), ("Next due", "next_due_at")):
        value = detail.get(key)
        if key.endswith("_at"):
            value = when(value)
        if key == "acknowledged_at" and detail.get("acknowledged_by"):
            value = f"{value} by {detail['acknowledged_by']}"
        facts.add_row(label, text(value))
    ladder = detail.get("ladder")
    if ladder:
        state = f"{ladder['state']} at tier {ladder['tier']}, {ladder['reminders']} reminders"
        if ladder["state"] == "exhausted":
            state = f"exhausted at tier {ladder['tier']} after {ladder['reminders']} reminders: nobody acknowledged"
        elif ladder["state"] == "active" and ladder.get("next_step_at"):
            state += f", next step {when(ladder['next_step_at'])}"
        facts.add_row("Ladder", state + (f" (why: {', '.join(ladder['reasons'])})" if ladder.get("reasons") else ""))
    out.print(facts)

    out.print(Text(f"Conversation ({len(detail['messages'])} messages)", style="bold"))
    for message in detail["messages"]:
        head = Text(f"  {when(message['received_at'])}  {message['kind']:<8} ", style="dim")
        head.append(f"{message['from'] or 'unknown'}: {message['subject']}")
        out.print(head)
        lines = (message.get("text") or "").strip().splitlines()
        for line in lines[:8]:
            out.print(Text("      " + line))
        if len(lines) > 8:
            out.print(Text(f"      … {len(lines) - 8} more lines (--json has the whole text)", style="dim"))
    if not detail["messages"]:
        out.print("  (no messages)")

    escalations = new("Escalations", "Rule", "Tier", "Step", "State", "Started", "Acknowledged", right=("Tier", "Step"))
    for e in detail["escalations"]:
        acked = when(e["acknowledged_at"]) + (f" by {e['acknowledged_by']}" if e.get("acknowledged_by") else "")
        escalations.add_row(e["rule"], text(e["tier"]), text(e["step"]), e["state"], when(e["started_at"]),
                            acked if e["acknowledged_at"] else "-")
    out.print(escalations if detail["escalations"] else Text("Escalations: none", style="bold"))

    notifications = detail.get("notifications") or []
    if notifications:
        table = new("Notifications", "#", "Kind", "Tier", "Status", "Queued", "Sent", "Subject", right=("#", "Tier"))
        for n in notifications:
            table.add_row(str(n["id"]), n["kind"], text(n["tier"]), n["status"], when(n["created_at"]),
                          when(n["sent_at"]), n["subject"])
        out.print(table)

    trail = new("Audit trail", "When", "Who", "What", "Rule", "Details")
    for e in detail["events"]:
        trail.add_row(when(e["at"]), e["actor"], e["action"], text(e["rule"]), _details(e.get("detail") or {}))
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

    table = new("Escalations per tier", "Tier", "Name", "Tickets", "Notifications", "Reminders",
                   right=("Tier", "Tickets", "Notifications", "Reminders"))
    for row in data["escalations_per_tier"]:
        table.add_row(str(row["tier"]), row["name"], str(row["tickets"]), str(row["notifications"]), str(row["reminders"]))
    out.print(table)

    table = new("Escalations per rule", "Rule", "Tickets", "Acknowledged", "Ack median", "Ack p90",
                   right=("Tickets", "Acknowledged", "Ack median", "Ack p90"))
    for row in data["escalations_per_rule"]:
        table.add_row(row["rule"], str(row["tickets"]), str(row["acknowledged"]), duration(row["ack_median_seconds"]),
                      duration(row["ack_p90_seconds"]))
    out.print(table if data["escalations_per_rule"] else Text("Escalations per rule: none", style="bold"))

    for key, title in (("time_to_acknowledge", "Time to acknowledge"), ("time_to_resolve", "Time to resolve")):
        table = new(title, "By", "", "Count", "Median", "p90", right=("Count", "Median", "p90"))
        for row in data[key]["by_tier"]:
            table.add_row("tier", row["name"] if row["tier"] is None else f"{row['tier']} {row['name']}",
                          str(row["count"]), duration(row["median_seconds"]), duration(row["p90_seconds"]))
        for row in data[key]["by_severity"]:
            table.add_row("severity", row["severity"], str(row["count"]), duration(row["median_seconds"]),
                          duration(row["p90_seconds"]))
        out.print(table)

    table = new("SLA breaches (working time of each severity's calendar)", "Severity", "Tickets",
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
        table = new(None, "Reminders before #ack", "Tickets", right=("Reminders before #ack", "Tickets"))
        for row in repeats["histogram"]:
            table.add_row(str(row["repeats"]), str(row["tickets"]))
        out.print(table)

    table = new(f"Reached tier {top['level']} ({top['name']}): {top['count']}", "Ref", "Severity", "Status",
                   "Opened", "Requester", "Subject")
    for t in top["tickets"]:
        table.add_row(t["ref"], t["severity"], t["status"], when(t["created_at"]), t["requester"], t["subject"])
    out.print(table if top["tickets"] else Text(f"Reached tier {top['level']} ({top['name']}): none", style="bold"))
    if top["count"] > len(top["tickets"]):
        out.print(f"(the {len(top['tickets'])} most recent of {top['count']}; --json lists the same)")

    table = new("Recurring issues (same subject)", "Subject", "Tickets", "Customers", "Escalated", "Latest",
                   right=("Tickets", "Customers", "Escalated"))
    for row in data["recurring_issues"]:
        table.add_row(row["subject"], str(row["tickets"]), str(row["customers"]), str(row["escalated"]),
                      text(row["latest_ref"]))
    out.print(table if data["recurring_issues"] else Text("Recurring issues: none", style="bold"))

    if not data["top_senders"]:
        out.print(Text("Behind most escalations: no escalated tickets", style="bold"))
    else:
        # two tables: a sender and a domain on one row would read as one fact
        out.print(Text("Senders behind most escalations", style="bold"))
        table = new(None, "Sender", "Escalated", right=("Escalated",))
        for row in data["top_senders"]:
            table.add_row(row["requester"], str(row["escalated_tickets"]))
        out.print(table)
        out.print(Text("Domains behind most escalations", style="bold"))
        table = new(None, "Domain", "Escalated", "Senders", right=("Escalated", "Senders"))
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
    table = new(None, unit.capitalize(), *numbers, right=numbers)

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
    table = new("Drills by tier", "Tier", "Name", "Drills", "Acknowledged", "Median", "Slowest", "Last drill",
                   right=("Tier", "Drills", "Acknowledged", "Median", "Slowest"))
    for row in data["tiers"]:
        table.add_row(str(row["tier"]), row["name"], str(row["drills"]), str(row["acknowledged"]),
                      duration(row["median_seconds"]), duration(row["slowest_seconds"]), when(row["last_started_at"]))
    out.print(table)
    table = new("Drills", "Ref", "Tier", "Started", "Mail sent", "Acknowledged", "By", "Time to #ack", "Status",
                   right=("Tier", "Time to #ack"))
    for d in data["drills"]:
        table.add_row(d["ref"], str(d["tier"]), when(d["started_at"]), when(d["sent_at"]), when(d["acknowledged_at"]),
                      text(d["acknowledged_by"]), duration(d["seconds_to_ack"]) if d["seconds_to_ack"] is not None
                      else "waiting", d["status"])
    out.print(table)



# -- the outbox, the quarantine, chat channels, the decision matrix --------------------------------

OUTBOX_COLUMNS = (
    Column("#", "id", right=True), Column("Ticket", "ticket"), Column("Kind", "kind"), Column("Tier", "tier", right=True),
    Column("Status", "status"), Column("Attempts", "attempts", right=True), Column("Queued", "created_at", time=True),
    Column("Sent", "sent_at", time=True), Column("Subject", "subject"),
)


def outbox_table(rows: Iterable[dict[str, Any]], total: int | None = None) -> None:
    show(rows, OUTBOX_COLUMNS, total=total, noun="mails", empty="No mail matches.",
         more="use --limit 0 for all, or narrow with --since and --status")


def outbox_detail(detail: dict[str, Any]) -> None:
    console().print(Text(f"#{detail['id']}  {detail['kind']}  {detail['status']}  {detail['subject']}", style="bold"))
    table.facts([("Ticket", detail["ticket"]), ("Message-ID", detail["message_id"]),
                 ("Queued", when(detail["created_at"])), ("Next attempt", when(detail["next_attempt_at"])),
                 ("Sent", when(detail["sent_at"])), ("Attempts", detail["attempts"]), ("Last error", detail["last_error"])])
    show(detail["deliveries"], (Column("Recipient", "recipient"), Column("Status", "status"),
                                Column("Attempts", "attempts", right=True), Column("Sent", "sent_at", time=True),
                                Column("Last error", "last_error")), title="Recipients")


QUARANTINE_COLUMNS = (Column("#", "id", right=True), Column("Received", "received_at", time=True),
                      Column("Folder", "folder"), Column("UID", "uid", right=True), Column("Reason", "reason"))


def quarantine_table(rows: Iterable[dict[str, Any]]) -> None:
    show(rows, QUARANTINE_COLUMNS, empty="Nothing in quarantine.")


def quarantine_detail(detail: dict[str, Any]) -> None:
    table.facts([("Id", detail["id"]), ("Status", detail["status"]), ("Reason", detail["reason"]),
                 ("Received", when(detail["received_at"])), ("Folder", detail["folder"]), ("UID", detail["uid"]),
                 ("Size", detail["size"]), ("SHA-256", detail["sha256"]), ("Outcome", detail["outcome"])])
    out = console()
    out.print(Text("Headers", style="bold"))
    for line in detail["headers"]:
        out.print(Text("  " + line))


def _last_post(channel: dict[str, Any]) -> str:
    last = channel["last_delivery"]
    if last is None:
        return "never posted"
    return (f"outbox #{last['outbox']} {last['status']} {when(last['sent_at'] or last['created_at'])}"
            + (f" ({last['error']})" if last["error"] else ""))


CHAT_COLUMNS = (Column("Channel", "name"), Column("Variable", "variable"), Column("URL", "url"),
                Column("Last post", _last_post))


def chat_table(channels: list[dict[str, Any]]) -> None:
    show(channels, CHAT_COLUMNS, empty="No chat channels: set ESCALATE_CHAT_<NAME>=<URL> and name the channel "
                                       "in rules.yaml (chat: [name]).")


def matrix(ruleset: Any) -> None:
    """The decision matrix: a row per severity, a column per time without response or resolution."""
    from escalate.reports.procedure import matrix_note, matrix_table

    data = matrix_table(ruleset)
    if data is None:
        console().print("rules.yaml has no matrix: section.")
        return
    names = {tier.level: tier.name for tier in ruleset.tiers}
    columns = [Column(f"Severity \\ {data['clock']} for", "severity")]
    columns += [Column(after, i) for i, after in enumerate(data["after"])]
    rows = [{"severity": row["severity"], **{i: f"{level} {names.get(level, '')}".strip() if level else None
                                            for i, level in enumerate(row["tiers"])}} for row in data["rows"]]
    show(rows, columns)
    console().print(matrix_note(data))
