"""`escalate rules doc` and `escalate rules matrix`: the escalation procedure written from rules.yaml.

Everything here is generated from the loaded Ruleset, so the documented process and the running
one cannot differ: tiers and their roles (responsible, accountable, consulted, informed), how a
ticket gets its severity, the calendars and targets, every rule with its criteria and actions,
the decision matrix, and how to reply.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from escalate.rules.durations import format_duration, format_working_time, parse_duration
from escalate.rules.model import Ruleset


def matrix_table(ruleset: Ruleset) -> dict[str, Any] | None:
    """The decision matrix as data ({"clock", "after", "rows"}), or None when the file has none."""
    return ruleset.matrix.as_table() if ruleset.matrix is not None else None


def matrix_markdown(ruleset: Ruleset) -> str:
    """The decision matrix as a Markdown table (for `rules doc`; `rules matrix` prints it as table.py's)."""
    table = matrix_table(ruleset)
    if table is None:
        return "(rules.yaml has no matrix: section)"
    names = {tier.level: tier.name for tier in ruleset.tiers}
    header = [f"severity \\ {table['clock']} for"] + table["after"]
    rows = [[row["severity"]] + [f"{level} {names.get(level, '')}".strip() if level else "-" for level in row["tiers"]]
            for row in table["rows"]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def matrix_note(table: dict[str, Any]) -> str:
    """What the matrix's times count, said under the table."""
    if table["repeat_every"]:
        return (f"(times in each severity's business hours; reminders every {table['repeat_every']} "
                "until acknowledged)")
    return "(times in each severity's business hours)"


def _target(value) -> str:
    return format_duration(value) if value is not None else "—"


def working_days_note(ruleset: Ruleset) -> str:
    """What "1d" and "1w" mean on the rules' calendars, with an example on the first one with hours."""
    calendar = next((c for c in ruleset.calendars if not c.always), None)
    if calendar is None:
        return "On the 24×7 calendar a day (d) is 24 hours and a week (w) 7 days."
    monday = date(2026, 1, 5)  # a Monday: the example reads the same every year
    while not calendar.intervals_on(monday) or not calendar.intervals_on(monday + timedelta(days=3)):
        monday += timedelta(days=7)
    start = calendar.intervals_on(monday)[0][0] + timedelta(hours=2)
    due = calendar.add(start, parse_duration("3d"))
    return (f"Days (d) and weeks (w) are working days and weeks of the calendar: on {calendar.name} a day is "
            f"{format_working_time(calendar.day_length)} and a week {format_working_time(calendar.week_length)} of working "
            f"time, so 3d from {_weekday(start, calendar)} "
            f"{start.astimezone(calendar.zone):%H:%M} is {_weekday(due, calendar)} "
            f"{due.astimezone(calendar.zone):%H:%M}, weekends and holidays skipped. On the 24×7 calendar a day is "
            "24 hours. Hours, minutes and seconds are working time on every calendar.")


def _weekday(moment: datetime, calendar) -> str:
    return f"{moment.astimezone(calendar.zone):%A}"


def procedure_markdown(ruleset: Ruleset, commands: dict[str, str] | None = None) -> str:
    out: list[str] = ["# Escalation procedure", "",
                      f"Generated from `{ruleset.source}` (version {ruleset.version}); edit that file, not this page.",
                      f"Customers write to **{ruleset.support_address}**; tickets are numbered "
                      f"{ruleset.reference_prefix}-1, {ruleset.reference_prefix}-2, … Times are in {ruleset.timezone}.",
                      "", "## Tiers and roles", "",
                      "| tier | responsible (group) | roster | accountable (lead) | consulted | informed |",
                      "|---|---|---|---|---|---|"]
    for tier in ruleset.tiers:
        consulted = ", ".join(f"{name} ({address})" for name, address in tier.consulted) or "—"
        out.append(f"| {tier.level} {tier.name} | {tier.group} | {', '.join(tier.roster)} | {tier.lead or '—'} | "
                   f"{consulted} | {', '.join(tier.informed) or '—'} |")
    if any(tier.informed for tier in ruleset.tiers):
        out += ["", f"The informed lists get one digest a day at {ruleset.digest_at:%H:%M} ({ruleset.timezone}) of the "
                    "tickets rules added to them (`inform`), not a mail per ticket."]
    out += ["", "## Severities and targets", "",
            "| severity | how a ticket gets it | first response | next response | resolution | business hours |",
            "|---|---|---|---|---|---|"]
    for severity in ruleset.severities:
        how = []
        if severity.keywords:
            how.append("words: " + ", ".join(severity.keywords))
        if severity.senders:
            how.append("senders: " + ", ".join(severity.senders))
        if severity.importance:
            how.append("marked " + "/".join(severity.importance) + " importance")
        if severity.default:
            how.append("anything else (default)")
        calendar = ruleset.calendar(severity.calendar)
        out.append(f"| {severity.name} | {'; '.join(how) or '—'} | {_target(severity.first_response)} | "
                   f"{_target(severity.next_response)} | {_target(severity.resolution)} | "
                   f"{calendar.name}: {calendar.describe()} |")
    out += ["", "Clocks count only business hours of the severity's calendar and stop while a ticket waits on "
                "the customer; a ticket's age (max_age) counts in real time. " + working_days_note(ruleset)]
    if ruleset.incidents is not None:
        out += ["", "## Incidents", "",
                f"Tickets from different customers whose subjects share at least "
                f"{round(ruleset.incidents.similarity * 100)}% of their words within "
                f"{format_duration(ruleset.incidents.window)} are one incident. Rules about incidents act once "
                "for the incident, not for each ticket."]
    if ruleset.matrix is not None:
        out += ["", "## Decision matrix", "", matrix_markdown(ruleset)]
        if ruleset.matrix.repeat_every:
            out += ["", f"Each escalation from the matrix is repeated every "
                        f"{format_duration(ruleset.matrix.repeat_every)} until someone acknowledges it."]
    out += ["", "## Escalation paths", ""]
    for rule in ruleset.rules:
        if rule.source != "rules":
            continue
        when = " and ".join(bound.describe() for bound in rule.criteria)
        then = []
        if rule.notifies:
            tier = ruleset.tier(rule.escalate_to)
            then.append(f"mail tier {tier.level} {tier.name} ({tier.group})")
            if rule.repeat_every:
                then.append(f"repeat every {format_duration(rule.repeat_every)} until acknowledged")
            if rule.next_tier_after is not None:
                then.append(f"after {rule.next_tier_after} unanswered repeats go to the next tier")
        then += [bound.describe() for bound in rule.actions]
        out.append(f"- **{rule.name}** — {rule.description or ''} When {when}: {'; '.join(then)}.")
    out += ["", "## How to reply", "",
            "Reply to an escalation mail from an address on the tier's roster; put one command per line "
            "at the start of a line:", ""]
    for name, description in (commands or {}).items():
        out.append(f"- `#{name}` — {description}")
    out += ["", "Escalations stop when one person acknowledges (`#ack`). Replies from anyone else, or to mail "
                "escalate did not send, are recorded and refused.",
            "", f"Each ticket has one escalation ladder: a rule for a tier the ticket already has adds its reason "
                f"without a mail; a higher one moves the ticket up at once. Nobody answering, the top tier is "
                f"reminded {ruleset.top_reminders} times, then its lead is told once and the reminders stop."]
    return "\n".join(out) + "\n"
