"""`escalate status`: what the daemon is doing, for a person (and --json for scripts) — the same
facts the metrics endpoint exposes, read from the database and the instance lock, plus the
instances sharing the database and the folders each holds (heartbeat.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Mapping

from peewee import fn

from escalate.clock import iso, shown_iso
from escalate.config import Settings, redact_url
from escalate.ops import heartbeat, problems
from escalate.ops.instance import InstanceLock
from escalate.outbound import chat, ratelimit
from escalate.outbound.settle import DELIVERY_FAILURES
from escalate.rules.durations import age_text
from escalate.store import migrations
from escalate.store.db import sqlite_path
from escalate.store.models import ACTIVE_STATUSES, Delivery, Escalation, Event, FolderState, Outbox, Quarantine, Ticket, database

NOT_RUNNING = 3  # the exit status of `escalate status` with no daemon running, as `systemctl is-active`


def ladder_counts() -> list[tuple[str, int]]:
    """Open tickets by the state of their latest ladder (active, acknowledged, exhausted, ended)."""
    latest = (Escalation.select(Escalation.ticket, fn.MAX(Escalation.id).alias("latest"))
              .group_by(Escalation.ticket))
    query = (Escalation.select(Escalation.state, fn.COUNT(Escalation.id))
             .join(latest, on=(Escalation.id == latest.c.latest))
             .join(Ticket, on=(Escalation.ticket == Ticket.id))
             .where(Ticket.status.in_(ACTIVE_STATUSES)).group_by(Escalation.state))
    return [(state, count) for state, count in query.tuples()]


def held_by_group_ceiling(now: datetime) -> dict[str, int]:
    """Ladder mails each tier level's hourly ceiling held back in the last hour (they went out in a summary)."""
    found = (Outbox.select(Outbox.tier, fn.COUNT(Outbox.id))
             .where((Outbox.status == "suppressed") & (Outbox.created_at > now - timedelta(hours=1))
                    & Outbox.last_error.contains(ratelimit.GROUP_CEILING)).group_by(Outbox.tier).tuples())
    return {str(tier): count for tier, count in found}


def ticket_counts() -> list[tuple[str, str, int]]:
    """(status, tier or "none", count) in one grouped query — for `status` and the metrics."""
    rows = Ticket.select(Ticket.status, Ticket.tier, fn.COUNT(Ticket.id)).group_by(Ticket.status, Ticket.tier).tuples()
    return [(status, str(tier) if tier is not None else "none", count) for status, tier, count in rows]


def outbox_backlog(now: datetime) -> tuple[int, float | None]:
    """How many mails are queued and the age in seconds of the oldest (None when none), in one query."""
    count, oldest = (Outbox.select(fn.COUNT(Outbox.id), fn.MIN(Outbox.created_at))
                     .where(Outbox.status == "queued").tuples().first())
    if not count:
        return 0, None
    return count, max((now - Outbox.created_at.python_value(oldest)).total_seconds(), 0.0)


def chat_backlog(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Chat posts queued (due or backing off) and failed, and the channels configured, URLs
    redacted: for `status` and the metrics. (Here, not in chat.py: chat.py reads no
    database, so rules/ may use it.)"""
    counts = dict(Delivery.select(Delivery.status, fn.COUNT(Delivery.id))
                  .where(Delivery.recipient.startswith(chat.RECIPIENT_PREFIX) & Delivery.status.in_(("queued",) + DELIVERY_FAILURES))
                  .group_by(Delivery.status).tuples())
    return {"channels": {name: chat.redacted(url) for name, url in sorted(chat.configured(environ).items())},
            "queued": counts.get("queued", 0), "failed": sum(counts.get(status, 0) for status in DELIVERY_FAILURES)}


def outbox_failed() -> int:
    """Mail that failed for good: a recipient refused, an address the server cannot carry, an
    unexpected error in its delivery. It waits for a person (`outbox retry`)."""
    return Outbox.select().where(Outbox.status == "failed").count()


def ticket_limit(now: datetime) -> dict[str, Any]:
    """The per-sender ticket limit over the last day: how many outside addresses it held to their
    latest ticket, and how many of their mails it put there (ratelimit.NEW_TICKETS_PER_SENDER)."""
    senders, mails = (Event.select(fn.COUNT(Event.actor.distinct()), fn.COUNT(Event.id))
                      .where((Event.action == "sender-ticket-limit") & (Event.at > now - timedelta(days=1)))
                      .tuples().first())
    return {"senders_limited_last_24h": senders, "mails_threaded_last_24h": mails,
            "limit": [{"window_seconds": int(window.total_seconds()), "new_tickets": count}
                      for window, count in ratelimit.NEW_TICKETS_PER_SENDER]}


def collect(settings: Settings, now: datetime) -> dict[str, Any]:
    holder = InstanceLock(settings.db_url).holder()
    instances = heartbeat.listing(heartbeat.wall_now())  # wall clock: --now simulates tickets, not processes
    counts = ticket_counts()
    by_status: dict[str, int] = {}
    by_tier: dict[str, int] = {}
    for status, tier, count in counts:
        by_status[status] = by_status.get(status, 0) + count
        if status in ACTIVE_STATUSES:
            by_tier[tier] = by_tier.get(tier, 0) + count
    queued, oldest_age = outbox_backlog(now)
    overdue = Ticket.select().where((Ticket.next_due_at <= now) & Ticket.status.in_(ACTIVE_STATUSES)).count()
    return {
        # SQLite: the instance lock says it exactly; PostgreSQL: a daemon runs when an instance heartbeats
        "daemon": {"running": holder is not None if sqlite_path(settings.db_url) else
                   any(i["state"] == "running" for i in instances),
                   "pid": holder if holder and holder > 0 else None},
        "database": redact_url(settings.db_url),
        "rules": str(settings.rules_path),
        "imap": settings.imap.redacted() if settings.imap else None,
        "smtp": settings.smtp.redacted() if settings.smtp else None,
        "tickets": by_status,
        "open_tickets_by_tier": by_tier,
        # open tickets by their escalation ladder: "exhausted" ones went unanswered to the top and stopped
        "open_tickets_by_ladder": dict(ladder_counts()),
        "due_now": overdue,
        "outbox": {
            "queued": queued,
            "oldest_queued_age_seconds": round(oldest_age) if oldest_age is not None else None,
            "failed": outbox_failed(),
        },
        "problems": problems.listing(),
        # per tier: ladder mails past the group's hourly ceiling in the last hour, sent as one summary instead
        "held_by_group_ceiling_last_hour": held_by_group_ceiling(now),
        "imap_accounts": [account.redacted() for account in settings.mailboxes],
        "folders": [{"folder": f.folder, "account": f.account, "uidvalidity": f.uidvalidity, "last_uid": f.last_uid,
                     "last_polled_at": iso(f.polled_at), "last_mail_at": iso(f.mail_at),
                     "polled_seconds_ago": _ago(now, f.polled_at), "mail_seconds_ago": _ago(now, f.mail_at)}
                    for f in FolderState.select().order_by(FolderState.account, FolderState.folder)],
        "quarantined": Quarantine.select().count(),
        "ticket_limit": ticket_limit(now),
        "chat": chat_backlog(),  # posts to chat channels, whose URLs are never shown
        "instances": instances,
        "schema_version": migrations.current_version(database),
    }


def _ago(now: datetime, moment: datetime | None) -> int | None:
    return None if moment is None else max(round((now - moment).total_seconds()), 0)


def _when(moment: str | None, seconds_ago: int | None, never: str) -> str:
    """"2026-11-02 10:00 CET (3m ago)", or `never` for a time there is none of."""
    if moment is None:
        return never
    return f"{shown_iso(moment)} ({'just now' if seconds_ago < 60 else age_text(timedelta(seconds=seconds_ago)) + ' ago'})"


def describe(status: dict[str, Any]) -> str:
    daemon = status["daemon"]
    lines = [
        f"daemon:      {'running, pid ' + str(daemon['pid']) if daemon['running'] else 'not running'}",
        f"database:    {status['database']}",
        f"rules:       {status['rules']}",
        f"imap:        {', '.join(status['imap_accounts']) or 'not configured'}",
        f"smtp:        {status['smtp'] or 'not configured'}",
        "tickets:     " + (", ".join(f"{n} {s}" for s, n in sorted(status["tickets"].items())) or "none"),
        "open by tier: " + (", ".join(f"tier {t}: {n}" for t, n in sorted(status["open_tickets_by_tier"].items())) or "none"),
        f"due now:     {status['due_now']}",
        f"outbox:      {status['outbox']['queued']} queued"
        + (f" (oldest {status['outbox']['oldest_queued_age_seconds']} s)" if status["outbox"]["queued"] else "")
        + f", {status['outbox']['failed']} failed",
        f"quarantine:  {status['quarantined']}",
        *(f"PROBLEM {p['name']} since {shown_iso(p['since'])}: {p['detail']}" for p in status["problems"]),
        "ladders:     " + (", ".join(f"{n} {state}" for state, n in sorted(status["open_tickets_by_ladder"].items()))
                           or "none"),
        "group limit: " + (", ".join(f"tier {t}: {n} held back for a summary"
                                      for t, n in sorted(status["held_by_group_ceiling_last_hour"].items()))
                           or "no mail held back in the last hour"),
        _describe_ticket_limit(status["ticket_limit"]),
        "chat:        " + (", ".join(f"{name} ({url})" for name, url in status["chat"]["channels"].items()) or "no channels")
        + f"; {status['chat']['queued']} posts queued, {status['chat']['failed']} failed",
        f"schema:      migration {status['schema_version']}",
    ]
    return "\n".join(lines)


def _folder_name(folder: dict[str, Any], status: dict[str, Any]) -> str:
    return f"{folder['account'] + '/' if len(status['imap_accounts']) > 1 else ''}{folder['folder']}"


def show(status: dict[str, Any]) -> None:
    """`describe`, then the instances and the folders as table.py's tables."""
    from escalate.reports import table

    print(describe(status))
    if status["instances"]:
        table.show(status["instances"], (
            table.Column("Instance", "name"), table.Column("State", "state"),
            table.Column("Heartbeat", lambda i: f"{i['heartbeat_age_seconds']:.0f} s ago", right=True),
            table.Column("Ingests", lambda i: ", ".join(i["holds"]) if i["state"] == "running" else None)),
            title="Instances")
    table.show(status["folders"], (
        table.Column("Folder", lambda f: _folder_name(f, status)), table.Column("Last UID", "last_uid", right=True),
        table.Column("Polled", lambda f: _when(f["last_polled_at"], f["polled_seconds_ago"], "not yet")),
        table.Column("Last mail", lambda f: _when(f["last_mail_at"], f["mail_seconds_ago"], "none yet"))),
        title="Folders")


def _describe_ticket_limit(limit: dict[str, Any]) -> str:
    windows = ", ".join(f"{w['new_tickets']} per {ratelimit.span(timedelta(seconds=w['window_seconds']))}"
                        for w in limit["limit"])
    return (f"ticket limit: {limit['mails_threaded_last_24h']} mail(s) from {limit['senders_limited_last_24h']} "
            f"sender(s) put on their latest ticket in 24 h (new tickets per outside address: {windows})")
