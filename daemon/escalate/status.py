"""`escalate status`: what the daemon is doing, for a person (and --json for scripts) — the same
facts the metrics endpoint exposes, read from the database and the instance lock."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from peewee import fn

from .clock import iso
from .config import Settings, redact_url
from .instance import InstanceLock
from .models import FolderState, Outbox, Quarantine, Ticket


def collect(settings: Settings, now: datetime) -> dict[str, Any]:
    holder = InstanceLock(settings.db_url).holder()
    by_status = {status: count for status, count in
                 Ticket.select(Ticket.status, fn.COUNT(Ticket.id)).group_by(Ticket.status).tuples()}
    by_tier = {str(tier) if tier is not None else "none": count for tier, count in
               Ticket.select(Ticket.tier, fn.COUNT(Ticket.id))
               .where(Ticket.status.in_(("new", "open", "waiting"))).group_by(Ticket.tier).tuples()}
    queued = Outbox.select().where(Outbox.status == "queued")
    oldest = queued.order_by(Outbox.created_at).first()
    overdue = Ticket.select().where((Ticket.next_due_at <= now) & Ticket.status.in_(("new", "open", "waiting"))).count()
    return {
        "daemon": {"running": holder is not None, "pid": holder if holder and holder > 0 else None},
        "database": redact_url(settings.db_url),
        "rules": str(settings.rules_path),
        "imap": settings.imap.redacted() if settings.imap else None,
        "smtp": settings.smtp.redacted() if settings.smtp else None,
        "tickets": by_status,
        "open_tickets_by_tier": by_tier,
        "due_now": overdue,
        "outbox": {
            "queued": queued.count(),
            "oldest_queued_age_seconds": round((now - oldest.created_at).total_seconds()) if oldest else None,
            "failed": Outbox.select().where(Outbox.status == "failed").count(),
        },
        "folders": [{"folder": f.folder, "uidvalidity": f.uidvalidity, "last_uid": f.last_uid,
                     "last_polled_at": iso(f.updated_at)} for f in FolderState.select().order_by(FolderState.folder)],
        "quarantined": Quarantine.select().count(),
    }


def describe(status: dict[str, Any]) -> str:
    daemon = status["daemon"]
    lines = [
        f"daemon:      {'running, pid ' + str(daemon['pid']) if daemon['running'] else 'not running'}",
        f"database:    {status['database']}",
        f"rules:       {status['rules']}",
        f"imap:        {status['imap'] or 'not configured'}",
        f"smtp:        {status['smtp'] or 'not configured'}",
        "tickets:     " + (", ".join(f"{n} {s}" for s, n in sorted(status["tickets"].items())) or "none"),
        "open by tier: " + (", ".join(f"tier {t}: {n}" for t, n in sorted(status["open_tickets_by_tier"].items())) or "none"),
        f"due now:     {status['due_now']}",
        f"outbox:      {status['outbox']['queued']} queued"
        + (f" (oldest {status['outbox']['oldest_queued_age_seconds']} s)" if status["outbox"]["queued"] else "")
        + f", {status['outbox']['failed']} failed",
        f"quarantine:  {status['quarantined']}",
    ]
    for folder in status["folders"]:
        lines.append(f"folder {folder['folder']}: last UID {folder['last_uid']}, polled {folder['last_polled_at']}")
    return "\n".join(lines)
