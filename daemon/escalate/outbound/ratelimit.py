"""Loop caps: how much mail one ticket, and one outside address, may cause in a time window, and
how many tickets one outside address may open.

A loop needs two automatic senders; we are one, so every outgoing stream is capped whatever the
other side does. The defaults are Zammad's loop-protection tables
(`ticket_trigger_loop_protection_articles` per ticket, `..._articles_total` per recipient);
customer acknowledgements are held tighter (a hostile autoresponder, a flood from
one sender: ≤ 3 an hour, ≤ 10 a day per address, and at
most one per sender per ticket). An address that refused a recipient permanently or bounced is
blocked for a day, so a dead mailbox gets one attempt, not one per notification.

Tickets per sender: an outside address (not on a roster) opens at most NEW_TICKETS_PER_SENDER
tickets in each window; past that, its mail about something new threads into its latest ticket
(the one still active, else the latest it opened, which the mail reopens) instead of opening
another. That is what a helpdesk user expects of a customer writing a flurry of mails: everything
they wrote is on their ticket, in front of the team, and they escalate once, not per mail —
holding the mail aside would hide a real customer's words until an admin released them. 200
"urgent" mails from one address make 5 tickets an hour, not 200 escalation ladders.

Capped mail is not dropped silently: the caller records it as "suppressed" with the reason.
Counting is over the rows we queued (queued, sent or failed; not those already suppressed), so a
restart cannot reset a cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from escalate.store import outbox as store_outbox
from escalate.store import tickets as store_tickets
from escalate.store.models import Delivery, Outbox

Window = tuple[timedelta, int]  # at most `count` mails within `timedelta`


def _table(*pairs: tuple[int, int]) -> tuple[Window, ...]:
    return tuple((timedelta(minutes=minutes), count) for minutes, count in pairs)


# Zammad's defaults: minutes → mails
PER_TICKET: tuple[Window, ...] = _table((10, 10), (30, 15), (60, 25), (180, 50), (600, 100))
PER_ADDRESS: tuple[Window, ...] = _table((10, 30), (30, 60), (60, 120), (180, 240), (600, 360))
ACKNOWLEDGEMENTS_PER_ADDRESS: tuple[Window, ...] = _table((60, 3), (24 * 60, 10))
DEAD_ADDRESS_BLOCK = timedelta(hours=24)
NEW_TICKETS_PER_SENDER: tuple[Window, ...] = _table((60, 5), (24 * 60, 20))
# A tier group gets at most this many ladder mails (escalation, reminder, next tier) an hour, and a
# lead as many "unanswered" notices; past it they are held and one summary of them goes out instead
# (notify.queue_group_summaries): a flood of tickets must not bury the people who have to act on them
# (rules.yaml `ladder: group_mails_per_hour`, default 30)
GROUP_CEILING_WINDOW = timedelta(hours=1)
GROUP_CEILING = "hourly ceiling"
LADDER_KINDS = ("escalation", "reminder", "next-tier", "unanswered")

# "rendering": decided by a tick, its mail not yet rendered by the sender (render.py)
COUNTED = ("rendering", "queued", "sent", "failed", "refused", "bounced")


@dataclass(frozen=True)
class Caps:
    per_ticket: tuple[Window, ...] = PER_TICKET
    per_address: tuple[Window, ...] = PER_ADDRESS
    acknowledgements_per_address: tuple[Window, ...] = ACKNOWLEDGEMENTS_PER_ADDRESS
    dead_address_block: timedelta = DEAD_ADDRESS_BLOCK


DEFAULT_CAPS = Caps()

def _over(times: list[datetime], windows: tuple[Window, ...], now: datetime, what: str, *,
          cap: str = "loop cap", things: str = "mails") -> str | None:
    if len(times) < _smallest_limit(windows):  # the usual case, decided without counting per window
        return None
    for window, limit in windows:
        recent = sum(1 for at in times if at > now - window)
        if recent >= limit:
            return f"{cap}: {what} already had {recent} {things} in the last {span(window)} (limit {limit})"
    return None


@lru_cache(maxsize=64)
def _smallest_limit(windows: tuple[Window, ...]) -> int:
    return min(limit for _, limit in windows)


def span(window: timedelta) -> str:
    """A window as people write it: "10 min", "24 h"."""
    minutes = int(window.total_seconds() // 60)
    return f"{minutes // 60} h" if minutes % 60 == 0 and minutes >= 60 else f"{minutes} min"


def _longest(windows: tuple[Window, ...]) -> tuple[timedelta, int]:
    return max(w for w, _ in windows), max(n for _, n in windows)


def ticket_cap(ticket_id: int, now: datetime, caps: Caps = DEFAULT_CAPS, *, also: int = 0,
               recent: list[datetime] | None = None) -> str | None:
    """Why one more mail about this ticket would exceed its cap, or None. `also`: mails about it
    decided at `now` and not written yet (a tick writes its batch's mail together). `recent`: its
    mails since `ticket_window` before now, when the caller read them for many tickets at once
    (`tickets_mail_times`); else they are read here."""
    if recent is None:
        recent = tickets_mail_times([ticket_id], now - ticket_window(caps)).get(ticket_id, [])
    return _over(recent + [now] * also, caps.per_ticket, now, "this ticket")


def ticket_window(caps: Caps = DEFAULT_CAPS) -> timedelta:
    """How far back the per-ticket cap looks."""
    return _longest(caps.per_ticket)[0]


def tickets_mail_times(ticket_ids: list[int], since: datetime) -> dict[int, list[datetime]]:
    """When each ticket's counted mails were queued after `since`: one query for a tick batch's
    tickets instead of one per notification."""
    times: dict[int, list[datetime]] = {}
    for start in range(0, len(ticket_ids), 500):
        chunk = ticket_ids[start:start + 500]
        for ticket_id, at in store_outbox.ticket_mail_times(chunk, since, COUNTED):
            times.setdefault(ticket_id, []).append(at)
    return times


def address_cap(address: str, now: datetime, windows: tuple[Window, ...], *, kinds: tuple[str, ...] | None = None,
                also: int = 0) -> str | None:
    """Why one more mail to `address` (optionally: of these kinds) would exceed `windows`, or None.
    `also`: mails to it decided at `now` and not written yet."""
    span, most = _longest(windows)
    query = (Delivery.select(Delivery.created_at).join(Outbox)
             .where((Delivery.recipient == address) & (Delivery.created_at > now - span)
                    & Delivery.status.in_(COUNTED)))
    if kinds:
        query = query.where(Outbox.kind.in_(kinds))
    times = [row.created_at for row in query.order_by(Delivery.created_at.desc()).limit(most)] + [now] * also
    return _over(times, windows, now, address)


def group_times(group: str, now: datetime, most: int) -> list[datetime]:
    """When the tier group (or lead) got its ladder mails within the ceiling's window (newest
    first, at most as many as the ceiling counts)."""
    query = (Delivery.select(Delivery.created_at).join(Outbox)
             .where((Delivery.recipient == group) & (Delivery.created_at > now - GROUP_CEILING_WINDOW)
                    & Delivery.status.in_(COUNTED) & Outbox.kind.in_(LADDER_KINDS)))
    return [row.created_at for row in query.order_by(Delivery.created_at.desc()).limit(most)]


def group_ceiling(group: str, now: datetime, times: list[datetime], limit: int, *, also: int = 0) -> str | None:
    """Why one more ladder mail to the tier group would pass its hourly ceiling of `limit`, or None."""
    return _over(times + [now] * also, ((GROUP_CEILING_WINDOW, limit),), now, group, cap=GROUP_CEILING)


def dead_address(address: str, now: datetime, caps: Caps = DEFAULT_CAPS) -> str | None:
    """Why `address` is blocked: it refused us permanently or bounced within the block window."""
    found = store_outbox.last_permanent_failure(address, now - caps.dead_address_block)
    if found is None:
        return None
    failed_at, code, status = found
    how = "bounced" if status == "bounced" else f"was refused permanently ({code})"
    return (f"dead address: {address} {how} at {failed_at:%Y-%m-%d %H:%M} UTC; blocked for "
            f"{span(caps.dead_address_block)} (`escalate outbox retry` overrides)")


def sender_ticket_limit(sender: str, now: datetime,
                        windows: tuple[Window, ...] = NEW_TICKETS_PER_SENDER) -> tuple[str, int] | None:
    """(why, the ticket to thread into) when `sender` has opened its limit of tickets, else None."""
    span, most = _longest(windows)
    found = store_tickets.sender_tickets(sender, now - span, most)
    why = _over([at for _, at, _ in found], windows, now, sender,
                cap="ticket limit", things="new tickets")
    if why is None:
        return None
    active = store_tickets.latest_active(sender)
    return why, active if active is not None else found[0][0]

