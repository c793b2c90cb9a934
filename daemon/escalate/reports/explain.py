"""`escalate rules explain REF`: why a ticket is where it is, and what happens next and when.

Reads one ticket and its ladder and asks the same rules, clocks and decision function the engine
uses (rules.ladder.decide), so the explanation cannot drift from what the daemon does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from escalate.clock import iso, shown_iso
from escalate.engine.tick import describe_next_step, facts_of
from escalate.rules import clocks
from escalate.rules.criteria.past_target import target_clock_start
from escalate.rules.durations import format_duration, format_working_time
from escalate.rules.facts import TicketFacts
from escalate.rules.ladder import Ladder, covered_tier, decide
from escalate.rules.model import Ruleset
from escalate.store.models import Escalation, Ticket
from escalate.tickets import ladders


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


def _rule_entry(rule, facts: TicketFacts, ruleset: Ruleset, ladder: Ladder, covered: int,
                now: datetime) -> dict[str, Any]:
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
    if fires_at is None:
        entry["state"] = "does not match"
        return entry
    if ladder.fired.get(rule.name) == fires_at:
        entry["state"] = "in the ladder" if ladder.active and rule.name in ladder.reasons else "fired"
        return entry
    entry["state"] = "pending" if fires_at > now else "due now"
    entry["next_at"] = iso(fires_at)
    if rule.notifies:
        tier = ruleset.tier(rule.escalate_to)
        entry["next"] = (f"escalate to tier {tier.level} ({tier.name})" if rule.escalate_to > covered
                         else f"absorbed: tier {covered} has the ticket already, no mail")
    else:
        entry["next"] = "run its actions"
    if rule.actions:
        entry["next"] += (" and " if rule.notifies else ": ") + ", ".join(entry["actions"])
    return entry


def explain(ticket: Ticket, ruleset: Ruleset, now: datetime) -> dict[str, Any]:
    facts = facts_of(ticket)
    ladder = ladders.ladder_of(ticket, list(Escalation.select().where(Escalation.ticket == ticket)))
    covered = covered_tier(ladder, facts, ruleset, now)
    rules = [_rule_entry(rule, facts, ruleset, ladder, covered, now) for rule in ruleset.rules]
    calendar = ruleset.calendar_for_severity(facts.severity)
    # what a tick would do now, with the engine's own function
    decision = decide(facts, ladder, ruleset, now)
    upcoming = [{"at": r["next_at"], "rule": r["rule"], "what": r["next"]} for r in rules if r["next_at"] is not None]
    if decision.mail is not None:
        upcoming.append({"at": iso(now), "rule": decision.mail.rule,
                         "what": f"{decision.mail.kind} to tier {decision.mail.tier} ({ruleset.tier(decision.mail.tier).name})"})
    elif ladder.active and ladder.next_step_at is not None:
        upcoming.append({"at": iso(ladder.next_step_at), "rule": ladder.rule,
                         "what": describe_next_step(ladder, ruleset, calendar)})
    upcoming.sort(key=lambda item: item["at"])
    return {
        "ref": ticket.ref, "subject": ticket.subject, "status": ticket.status, "severity": ticket.severity,
        "tier": ticket.tier, "now": iso(now), "calendar": {"name": calendar.name, "hours": calendar.describe(),
                                                           "open_now": calendar.is_open(now)},
        "waiting_since": iso(ticket.waiting_since),
        "incident": ({"id": ticket.incident_id, "customers": len(facts.incident_joins),
                      "primary": facts.incident_primary} if ticket.incident_id else None),
        "clocks": running_clocks(facts, ruleset, now),
        "ladder": ladders.summary(ladder, ruleset),
        "rules": rules,
        "matching": [r["rule"] for r in rules if r["state"] in ("in the ladder", "fired", "due now", "pending")],
        "next": upcoming[0] if upcoming else None,
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
    if report["ladder"]:
        lad = report["ladder"]
        text = f"  ladder {lad['state']} at tier {lad['tier']}, reminder {lad['step']}, following {lad['rule']}"
        if lad["reasons"]:
            text += f"; why: {', '.join(lad['reasons'])}"
        lines.append(text)
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
