"""What escalated, how fast it was answered, and what keeps coming back: the numbers behind
`escalate report`, as plain data (views.py prints them, html.py draws them).

Everything comes from the tables the daemon already keeps — tickets, escalations, the outbox —
in a handful of grouped queries over the tickets opened in the window, never a query per ticket.
Durations are computed by the database (sla.epoch) so a large history is not parsed row by row.
Drill tickets (drill.py) are left out unless asked for: a practice run is not a real escalation.

Percentiles are nearest-rank: the p90 is a time that 90% of the cases met, one of the real values.
The trend per week or day beside the period before is trend.py's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from typing import Any, Callable

import peewee

from escalate.clock import iso
from escalate.reports import trend as report_trend
from escalate.reports.window import Scope, created_at_column, durations, rows, share
from escalate.rules.model import Ruleset
from escalate.store.models import Escalation, Outbox, Ticket
from escalate.tickets import sla

DEFAULT_PERIOD = timedelta(days=30)
TOP = 10  # rows in the "most" lists
TOP_TIER_LIST = 25  # tickets listed that reached the top tier (all are counted)
NOT_ESCALATED = "not escalated"
ESCALATION_KINDS = ("escalation", "next-tier", "reminder")

Progress = Callable[[str, int], None]  # (the stage starting, how many are done)


def _tier_name(ruleset: Ruleset, level: int | None) -> str:
    if level is None:
        return NOT_ESCALATED
    try:
        return ruleset.tier(level).name
    except KeyError:
        return f"tier {level} (no longer in the rules)"


def _severity_order(ruleset: Ruleset) -> Callable[[str], tuple[int, str]]:
    order = {s.name: i for i, s in enumerate(ruleset.severities)}
    return lambda name: (order.get(name, len(order)), name)


def build(ruleset: Ruleset, *, since: datetime | None, until: datetime, now: datetime,
          include_drills: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """The report over the tickets opened in [since, until); `now` ends clocks still running."""
    since = since or until - DEFAULT_PERIOD
    step = progress or (lambda _stage, _done: None)
    created = created_at_column(since, until)
    window = (created >= since) & (created < until)
    if not include_drills:
        window &= (Ticket.drill == False)  # noqa: E712 -- peewee builds SQL from ==
    scope = Scope(since, until, include_drills, window)
    report: dict[str, Any] = {"window": {"since": iso(since), "until": iso(until), "now": iso(now),
                                         "drills_included": include_drills}}
    for done, (name, stage) in enumerate(STAGES):
        step(name, done)
        report.update(stage(ruleset, scope, now))
    step("done", len(STAGES))
    return report


def _totals(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    window = scope.window
    escalated = peewee.fn.SUM(peewee.Case(None, [(Ticket.tier.is_null(False), 1)], 0))
    acknowledged = peewee.fn.SUM(peewee.Case(None, [(Ticket.acknowledged_at.is_null(False), 1)], 0))
    resolved = peewee.fn.SUM(peewee.Case(None, [(Ticket.status.in_(("resolved", "closed")), 1)], 0))
    top = peewee.fn.SUM(peewee.Case(None, [(Ticket.tier >= ruleset.max_tier_level, 1)], 0))
    [(total, esc, ack, res, top_n)] = rows(Ticket.select(peewee.fn.COUNT(Ticket.id), escalated, acknowledged, resolved,
                                                         top).where(window))
    exhausted = (Escalation.select(peewee.fn.COUNT(peewee.fn.DISTINCT(Escalation.ticket)))
                 .join(Ticket, on=(Escalation.ticket == Ticket.id))
                 .where(window & (Escalation.state == "exhausted")).scalar())
    return {"totals": {"tickets": total, "escalated": esc or 0, "acknowledged": ack or 0, "resolved": res or 0,
                       "reached_top_tier": top_n or 0,
                       # a ladder that ran its course: the top tier was reminded and nobody answered
                       "ladder_exhausted": exhausted or 0}}


def _per_tier(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    """Per tier: tickets brought to it (first notice or a climb from below), notifications, reminders."""
    window = scope.window
    brought = peewee.fn.COUNT(peewee.fn.DISTINCT(peewee.Case(None, [(Outbox.kind != "reminder", Outbox.ticket)], None)))
    reminders = peewee.fn.SUM(peewee.Case(None, [(Outbox.kind == "reminder", 1)], 0))
    found = {tier: (tickets, notes, rem or 0) for tier, tickets, notes, rem in rows(
        Outbox.select(Outbox.tier, brought, peewee.fn.COUNT(Outbox.id), reminders)
        .join(Ticket, on=(Outbox.ticket == Ticket.id))
        .where(window & Outbox.kind.in_(ESCALATION_KINDS))
        .group_by(Outbox.tier).order_by(Outbox.tier))}
    levels = sorted(set(found) | {t.level for t in ruleset.tiers})
    return {"escalations_per_tier": [
        {"tier": level, "name": _tier_name(ruleset, level), "tickets": found.get(level, (0, 0, 0))[0],
         "notifications": found.get(level, (0, 0, 0))[1], "reminders": found.get(level, (0, 0, 0))[2]}
        for level in levels]}


def _per_rule(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    window = scope.window
    acknowledged = peewee.fn.SUM(peewee.Case(None, [(Escalation.state == "acknowledged", 1)], 0))
    fired = rows(Escalation.select(Escalation.rule, peewee.fn.COUNT(Escalation.id), acknowledged)
                 .join(Ticket, on=(Escalation.ticket == Ticket.id))
                 .where(window).group_by(Escalation.rule))
    ack_times: dict[str, list[float]] = defaultdict(list)
    for _ticket, rule, _tier, _severity, seconds, _step in scope.acknowledged():
        ack_times[rule].append(seconds)
    described = {rule.name: rule.description for rule in ruleset.rules}
    result = []
    for rule, count, acked in fired:
        times = durations(ack_times.get(rule, []))
        result.append({"rule": rule, "description": described.get(rule, "(no longer in the rules)"),
                       "tickets": count, "acknowledged": acked or 0,
                       "ack_median_seconds": times["median_seconds"], "ack_p90_seconds": times["p90_seconds"]})
    result.sort(key=lambda r: (-r["tickets"], r["rule"]))
    return {"escalations_per_rule": result}


def _acknowledge(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    """Time from an escalation's start to the acknowledgement, once per ticket (the longest wait:
    one #ack stops every escalation of the ticket), by the tier that acknowledged and by severity;
    and how many reminders went out before it."""
    per_ticket: dict[int, tuple] = {}
    repeats_by_tier: dict[int, Counter] = defaultdict(Counter)
    for ticket, _rule, tier, severity, seconds, step in scope.acknowledged():
        if ticket not in per_ticket or seconds > per_ticket[ticket][2]:
            per_ticket[ticket] = (tier, severity, seconds, step)
    by_tier: dict[int, list[float]] = defaultdict(list)
    by_severity: dict[str, list[float]] = defaultdict(list)
    repeats: Counter = Counter()
    for tier, severity, seconds, step in per_ticket.values():
        by_tier[tier].append(seconds)
        by_severity[severity].append(seconds)
        repeats[step] += 1
        repeats_by_tier[tier][step] += 1
    total = sum(repeats.values())
    histogram = [{"repeats": n, "tickets": repeats[n]} for n in range(0, max(repeats, default=-1) + 1)]
    return {
        "time_to_acknowledge": {
            "by_tier": [{"tier": t, "name": _tier_name(ruleset, t), **durations(v)} for t, v in sorted(by_tier.items())],
            "by_severity": [{"severity": s, **durations(by_severity[s])}
                            for s in sorted(by_severity, key=_severity_order(ruleset))],
        },
        "repeats_before_ack": {
            "histogram": histogram,
            "mean": round(sum(n * c for n, c in repeats.items()) / total, 2) if total else None,
            "first_notice_share": share(repeats[0], total),
            "by_tier": [{"tier": t, "name": _tier_name(ruleset, t), "tickets": sum(c.values()),
                         "mean": round(sum(n * k for n, k in c.items()) / sum(c.values()), 2)}
                        for t, c in sorted(repeats_by_tier.items())],
        },
    }


def _resolve(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    window = scope.window
    seconds = sla.epoch(Ticket.resolved_at) - sla.epoch(Ticket.created_at)
    resolved = rows(Ticket.select(Ticket.tier, Ticket.severity, seconds)
                    .where(window & Ticket.status.in_(("resolved", "closed")) & Ticket.resolved_at.is_null(False)))
    by_tier: dict[int | None, list[float]] = defaultdict(list)
    by_severity: dict[str, list[float]] = defaultdict(list)
    for tier, severity, value in resolved:
        by_tier[tier].append(value)
        by_severity[severity].append(value)
    tiers = sorted(by_tier, key=lambda t: -1 if t is None else t)
    return {"time_to_resolve": {
        "by_tier": [{"tier": t, "name": _tier_name(ruleset, t), **durations(by_tier[t])} for t in tiers],
        "by_severity": [{"severity": s, **durations(by_severity[s])} for s in sorted(by_severity, key=_severity_order(ruleset))],
    }}


def _breaches(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    """Breaches per severity and tier, as counts and as a share of the tickets opened."""
    window = scope.window
    counts = dict(rows(Ticket.select(Ticket.severity, peewee.fn.COUNT(Ticket.id)).where(window)
                       .group_by(Ticket.severity)))
    broken: dict[tuple[str, str], int] = Counter()
    by_tier: dict[tuple[int | None, str], int] = Counter()
    breached_tickets: set[int] = set()
    for breach in scope.breaches(ruleset, now):
        broken[(breach.severity, breach.target)] += 1
        by_tier[(breach.tier, breach.target)] += 1
        breached_tickets.add(breach.ticket_id)
    table = []
    for severity in sorted(set(counts) | {s.name for s in ruleset.severities}, key=_severity_order(ruleset)):
        try:
            rule_severity = ruleset.severity(severity)
        except KeyError:
            rule_severity = None
        row = {"severity": severity, "tickets": counts.get(severity, 0)}
        for target in sla.TARGETS:
            limit = rule_severity.target(target) if rule_severity else None
            row[f"{target}_target_seconds"] = limit.total_seconds() if limit else None
            row[f"{target}_breached"] = broken.get((severity, target), 0)
            row[f"{target}_breach_share"] = share(row[f"{target}_breached"], row["tickets"])
        table.append(row)
    tiers = sorted({t for t, _ in by_tier}, key=lambda t: -1 if t is None else t)
    total = {target: sum(n for (_, t), n in broken.items() if t == target) for target in sla.TARGETS}
    tickets = sum(counts.values())
    return {"sla_breaches": {
        "by_severity": table,
        "by_tier": [{"tier": t, "name": _tier_name(ruleset, t),
                     **{f"{target}_breached": by_tier.get((t, target), 0) for target in sla.TARGETS}} for t in tiers],
        "total": total,
        # the same as shares of the tickets opened; "tickets" counts those that broke either target
        "share": {**{target: share(n, tickets) for target, n in total.items()},
                  "tickets": share(len(breached_tickets), tickets)},
        "breached_tickets": len(breached_tickets),
    }}


def _trend(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:

    return report_trend.trend(ruleset, scope, now)


def _top_tier(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    window = scope.window
    level = ruleset.max_tier_level
    reached = Ticket.select().where(window & (Ticket.tier >= level))
    listed = reached.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(TOP_TIER_LIST)
    return {"top_tier": {
        "level": level, "name": _tier_name(ruleset, level), "count": reached.count(),
        "tickets": [{"ref": t.ref, "subject": t.subject, "severity": t.severity, "status": t.status,
                     "requester": t.requester, "created_at": iso(t.created_at)} for t in listed],
    }}


def _recurring(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    """Tickets with the same subject once reply prefixes, tags and case are gone (conversations.
    normalise_subject, stored on each ticket): the same question asked again and again."""
    window = scope.window
    count = peewee.fn.COUNT(Ticket.id)
    found = rows(Ticket.select(Ticket.normalised_subject, count, peewee.fn.COUNT(peewee.fn.DISTINCT(Ticket.requester)),
                               peewee.fn.SUM(peewee.Case(None, [(Ticket.tier.is_null(False), 1)], 0)),
                               peewee.fn.MAX(Ticket.id))
                 .where(window & (Ticket.normalised_subject != ""))
                 .group_by(Ticket.normalised_subject).having(count >= 2)
                 .order_by(count.desc(), Ticket.normalised_subject).limit(TOP))
    latest = dict(rows(Ticket.select(Ticket.id, Ticket.ref).where(Ticket.id.in_([r[4] for r in found])))) if found else {}
    return {"recurring_issues": [
        {"subject": subject, "tickets": n, "customers": customers, "escalated": escalated or 0,
         "latest_ref": latest.get(last_id)}
        for subject, n, customers, escalated, last_id in found]}


def _senders(ruleset: Ruleset, scope: Scope, now: datetime) -> dict[str, Any]:
    """Who is behind the escalated tickets: the requesters, and their mail domains."""
    window = scope.window
    escalated = rows(Ticket.select(Ticket.requester, peewee.fn.COUNT(Ticket.id))
                     .where(window & Ticket.tier.is_null(False)).group_by(Ticket.requester))
    senders: Counter = Counter()
    domains: Counter = Counter()
    domain_senders: Counter = Counter()
    for requester, n in escalated:
        senders[requester] = n
        domain = requester.rpartition("@")[2].lower() or requester
        domains[domain] += n
        domain_senders[domain] += 1
    by_count = lambda item: (-item[1], item[0])  # noqa: E731 -- most first, then by name: stable output
    return {
        "top_senders": [{"requester": r, "escalated_tickets": n} for r, n in sorted(senders.items(), key=by_count)[:TOP]],
        "top_domains": [{"domain": d, "escalated_tickets": n, "senders": domain_senders[d]}
                        for d, n in sorted(domains.items(), key=by_count)[:TOP]],
    }


# what build() does, in order; the CLI shows a progress bar over these
STAGES = [
    ("totals", _totals), ("escalations per tier", _per_tier), ("escalations per rule", _per_rule),
    ("time to acknowledge", _acknowledge), ("time to resolve", _resolve), ("SLA breaches", _breaches),
    ("top tier", _top_tier), ("recurring issues", _recurring), ("senders and domains", _senders),
    ("trend", _trend),
]
