"""`escalate rules explain REF`: why a ticket is where it is, and what happens next and when.

Reads one ticket and its escalations and asks the same rules and clocks the engine uses, so the
explanation cannot drift from what the daemon does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from .clock import iso, shown_iso
from .engine import facts_of, step_due
from .models import Escalation, Ticket
from .rules import clocks
from .rules.durations import format_duration, format_working_time
from .rules.criteria.past_target import target_clock_start
from .rules.facts import TicketFacts
from .rules.model import Ruleset


def _clock(facts: TicketFacts, ruleset: Ruleset, name: str, start: datetime | None, target: timedelta | None,
           now: datetime, *, pausable: bool = True) -> dict[str, Any]:
    running = start is not None and not facts.is_done
    paused = running and pausable and facts.status == "waiting"
    entry: dict[str, Any] = {"clock": name, "running": running and not paused, "paused": paused,
                             "started_at": iso(start) if running else None,
                             "target": format_duration(target) if target else None}
    if not running:
        return entry
    elapsed = clocks.elapsed(facts, ruleset, start, now, pausable=pausable)
    entry["elapsed"] = format_working_time(elapsed)  # hours: "1d" in a target means a working day
    if target is not None:
        working = clocks.calendar_of(facts, ruleset).working(target)  # "1d": a working day of the calendar
        if working != target:
            entry["target_working_time"] = format_working_time(working)
        entry["left"] = format_working_time(working - elapsed) if working > elapsed else "0s"
        entry["breached"] = elapsed >= working
        due = clocks.due(facts, ruleset, start, target, pausable=pausable)
        entry["due_at"] = iso(due)
    return entry


def running_clocks(facts: TicketFacts, ruleset: Ruleset, now: datetime) -> list[dict[str, Any]]:
    try:
        severity = ruleset.severity(facts.severity)
    except KeyError:
        severity = ruleset.default_severity
    result = [
        _clock(facts, ruleset, "first response", target_clock_start(facts, "first_response"),
               severity.first_response, now),
        _clock(facts, ruleset, "next response", target_clock_start(facts, "next_response"),
               severity.next_response, now),
        _clock(facts, ruleset, "resolution", target_clock_start(facts, "resolution"), severity.resolution, now),
        _clock(facts, ruleset, "age (real time)", None if facts.is_done else facts.created_at, None, now,
               pausable=False),
    ]
    return result


def _rule_entry(rule, facts: TicketFacts, ruleset: Ruleset, escalation: Escalation | None,
                now: datetime) -> dict[str, Any]:
    calendar = ruleset.calendar_for_severity(facts.severity)
    criteria = []
    for bound in rule.criteria:
        moment = bound.holds_from(facts, ruleset)
        criteria.append({"criterion": bound.describe(), "holds": moment is not None and moment <= now,
                         "from": iso(moment) if moment is not None and moment.year > 1 else None})
    fires_at = rule.fires_at(facts, ruleset)
    entry: dict[str, Any] = {
        "rule": rule.name, "description": rule.description, "line": rule.line, "source": rule.source,
        "criteria": criteria, "fires_at": iso(fires_at), "next_at": None, "next": None,
        "actions": [bound.describe() for bound in rule.actions],
    }
    if escalation is not None:
        entry["escalation"] = {"state": escalation.state, "step": escalation.step, "tier": escalation.tier,
                               "started_at": iso(escalation.started_at),
                               "acknowledged_by": escalation.acknowledged_by}
    if escalation is not None and escalation.state != "active":
        entry["state"] = escalation.state  # acknowledged or ended: done with this ticket
        return entry
    if fires_at is None:
        entry["state"] = "paused" if escalation is not None and facts.status == "waiting" else "does not match"
        return entry
    if escalation is None:
        entry["state"] = "pending" if fires_at > now else "due now"
        entry["next_at"] = iso(fires_at)
        target = f"tier {rule.escalate_to} ({ruleset.tier(rule.escalate_to).name})" if rule.notifies else None
        entry["next"] = f"escalate to {target}" if target else "run its actions"
        if rule.actions:
            entry["next"] += " and " + ", ".join(entry["actions"])
        return entry
    entry["state"] = "escalating"
    if rule.repeat_every is not None:
        step = escalation.step + 1
        when = step_due(calendar, escalation.started_at, step, rule.repeat_every)
        level = rule.tier_for_step(step, ruleset)
        entry["next_at"] = iso(when)
        entry["next"] = (f"reminder to tier {level} ({ruleset.tier(level).name})" if level == escalation.tier
                         else f"escalate to tier {level} ({ruleset.tier(level).name})") + " unless acknowledged"
    return entry


def explain(ticket: Ticket, ruleset: Ruleset, now: datetime) -> dict[str, Any]:
    facts = facts_of(ticket)
    escalations = {e.rule: e for e in Escalation.select().where(Escalation.ticket == ticket)}
    rules = [_rule_entry(rule, facts, ruleset, escalations.get(rule.name), now) for rule in ruleset.rules]
    upcoming = [r for r in rules if r["next_at"] is not None]
    upcoming.sort(key=lambda r: r["next_at"])
    calendar = ruleset.calendar_for_severity(facts.severity)
    return {
        "ref": ticket.ref, "subject": ticket.subject, "status": ticket.status, "severity": ticket.severity,
        "tier": ticket.tier, "now": iso(now), "calendar": {"name": calendar.name, "hours": calendar.describe(),
                                                           "open_now": calendar.is_open(now)},
        "waiting_since": iso(ticket.waiting_since),
        "incident": ({"id": ticket.incident_id, "customers": len(facts.incident_joins),
                      "primary": facts.incident_primary} if ticket.incident_id else None),
        "clocks": running_clocks(facts, ruleset, now),
        "rules": rules,
        "matching": [r["rule"] for r in rules if r["state"] in ("escalating", "due now", "pending")],
        "next": ({"at": upcoming[0]["next_at"], "rule": upcoming[0]["rule"], "what": upcoming[0]["next"]}
                 if upcoming else None),
        "next_due_at": iso(ticket.next_due_at),
    }


def render_text(report: dict[str, Any]) -> str:
    """The report for a person: times in the team's zone with its abbreviation."""
    lines = [f"{report['ref']}  {report['subject']}",
             f"  {report['status']}, severity {report['severity']}, tier {report['tier'] or '-'}; "
             f"calendar {report['calendar']['name']}: {report['calendar']['hours']}"
             f" ({'open' if report['calendar']['open_now'] else 'closed'} now)"]
    if report["incident"]:
        inc = report["incident"]
        lines.append(f"  incident #{inc['id']}: {inc['customers']} customers"
                     + ("" if inc["primary"] else " (another ticket speaks for the incident)"))
    lines.append("clocks:")
    for clock in report["clocks"]:
        if not clock["running"] and not clock["paused"]:
            lines.append(f"  {clock['clock']:16} not running")
            continue
        text = f"  {clock['clock']:16} {clock.get('elapsed', '')} counted"
        if clock.get("target"):
            target = clock["target"]
            if clock.get("target_working_time"):  # "2d" on office hours: 2 working days, 20h of working time
                target += f" ({clock['target_working_time']} working time)"
            text += f" of {target}; " + ("BREACHED" if clock.get("breached") else f"{clock['left']} left")
            if clock.get("due_at") and not clock.get("breached"):
                text += f", due {shown_iso(clock['due_at'])}"
        if clock["paused"]:
            text += " (paused: waiting on the customer)"
        lines.append(text)
    lines.append("rules:")
    for rule in report["rules"]:
        lines.append(f"  {rule['rule']} (line {rule['line']}): {rule['state']}")
        for criterion in rule["criteria"]:
            mark = "yes" if criterion["holds"] else "no "
            since = f" (from {shown_iso(criterion['from'])})" if criterion["from"] else ""
            lines.append(f"      [{mark}] {criterion['criterion']}{since}")
        if rule["next"]:
            lines.append(f"      next: {rule['next']} at {shown_iso(rule['next_at'])}")
    nxt = report["next"]
    lines.append(f"next: {nxt['what']} at {shown_iso(nxt['at'])} (rule {nxt['rule']})" if nxt
                 else "next: nothing is scheduled until the ticket changes")
    return "\n".join(lines)
