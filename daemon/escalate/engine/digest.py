"""The informed lists' daily digest: one mail a day listing what the rules added to it.

Rules with `inform: true` record a "digest" audit event naming the list (rules/actions/inform.py).
Once a day, at `digest: {at: "08:00"}` in the rules' timezone, each list that was added to since
the previous digest moment gets one mail covering that day. The check runs with every tick, so
it follows the daemon's clock — `run --once --now …` sends a digest that is due, and a daemon
that was down at 08:00 sends it at its next tick — rather than the wall clock the `schedule`
library keeps. A Digest row with a unique (list, day) key is written in the transaction that
queues the mail, so restarts and several instances sharing PostgreSQL send it once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from escalate.outbound import notify
from escalate.outbound.templates import Renderer
from escalate.rules.model import Ruleset, normalise_address
from escalate.store import rows
from escalate.store.db import write_transaction
from escalate.store.models import Digest, Event, Outbox

log = logging.getLogger(__name__)


def period(now: datetime, ruleset: Ruleset) -> tuple[datetime, datetime]:
    """(start, end) in UTC of the latest digest day that has ended by `now`: end is the most recent
    digest moment, start the one a calendar day before it (23 or 25 hours across a DST change)."""
    zone = ZoneInfo(ruleset.timezone)
    local = now.astimezone(zone)
    end = datetime.combine(local.date(), ruleset.digest_at, zone)
    if end > local:
        end = datetime.combine(local.date() - timedelta(days=1), ruleset.digest_at, zone)
    start = datetime.combine(end.date() - timedelta(days=1), ruleset.digest_at, zone)
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def additions(start: datetime, end: datetime) -> dict[tuple[str, ...], list[int]]:
    """The tickets rules added to each informed list's digest in [start, end), oldest first."""
    found: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for event in (Event.select(Event.ticket, Event.detail)
                  .where((Event.action == "digest") & (Event.at >= start) & (Event.at < end))
                  .order_by(Event.at, Event.id)):
        recipients = tuple(sorted({normalise_address(r) for r in (event.detail or {}).get("recipients", [])} - {""}))
        if recipients and event.ticket_id is not None and event.ticket_id not in found[recipients]:
            found[recipients].append(event.ticket_id)
    return dict(found)


# a Digest row under this name says a day's digests were all queued: later ticks that day need
# not read the day's events again (one indexed lookup per tick instead)
DAY_DONE = "*"


def queue_due(ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime) -> list[Outbox]:
    """Queue every digest due by `now` that was not queued yet; the rows queued."""
    start, end = period(now, ruleset)
    if Digest.select().where((Digest.recipients == DAY_DONE) & (Digest.period_end == end)).exists():
        return []
    queued: list[Outbox] = []
    for recipients, ticket_ids in additions(start, end).items():
        with write_transaction():
            # the unique key decides who sends it: a second instance (or a rerun) inserts nothing
            digest_id = rows.insert(Digest, {"recipients": ",".join(recipients), "period_end": end,
                                                 "created_at": now}, ignore_conflict=True)
            if digest_id is None:
                continue
            row = notify.queue_digest(recipients=list(recipients), period_start=start, period_end=end,
                                      ruleset=ruleset, renderer=renderer, secret=secret, now=now,
                                      ticket_ids=ticket_ids)
            if row is not None:
                Digest.update(outbox=row.id).where(Digest.id == digest_id).execute()
                queued.append(row)
                log.info("queued the digest of %s to %s: %d tickets", f"{start:%Y-%m-%d %H:%M}",
                         ", ".join(recipients), len(ticket_ids))
    with write_transaction():
        rows.insert(Digest, {"recipients": DAY_DONE, "period_end": end, "created_at": now}, ignore_conflict=True)
    return queued
