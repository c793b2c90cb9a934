"""Simulated long run: days of support traffic stepped with the clock, then `rules simulate` over them.

`run_l5(days, per_day)` opens a fresh SQLite database, loads the example rules.yaml (business-hours
calendars in Europe/Berlin, the decision matrix, incidents, every action), and drives the daemon's
own code — tickets.py for what customers and agents do, incidents.link_new_ticket as ingest does,
engine.tick for evaluation — stepping `now` (what `--now` sets) to each moment something happens:
the next scripted event or the earliest `next_due_at` in the database. Then it replays the stored
history with simulate.simulate and returns both, so a caller can check they agree exactly.

Used by tests/integration/test_engine_l5.py (a few days) and by `python bench/l5_bench.py` (30 days,
500 tickets a day).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from escalate.engine import tick as engine
from escalate.outbound.templates import Renderer
from escalate.reports import simulate
from escalate.rules.loader import load_ruleset
from escalate.store import db
from escalate.store.models import ACTIVE_STATUSES, Message, Outbox, Ticket
from escalate.tickets import incidents
from escalate.tickets import lifecycle as tickets
from escalate.tickets.lifecycle import TicketStateError

REPO = Path(__file__).resolve().parents[1]
SECRET = b"l5" * 16
START = datetime(2026, 3, 16, 0, 0, tzinfo=timezone.utc)  # a Monday; 30 days span the DST change of March 29

SUBJECTS = [  # (subject, how often) — keywords pick the severity
    ("Checkout is down for our shop", 1), ("Outage: API returns 502", 1),
    ("Export is broken", 3), ("Error when saving the invoice", 3), ("cannot log in to the portal", 2),
    ("Change of billing address", 8), ("Invoice copy for October", 6), ("New user for our team", 6),
    ("Question about VAT per line", 4), ("Feature request: dark mode", 2),
]
BURSTS = ["Login page returns error 500", "Payments failing with timeout", "Email notifications not arriving"]


@dataclass(order=True)
class Scripted:
    at: datetime
    order: int
    action: str
    key: int  # the scripted ticket's number
    detail: str = ""


def _script(days: int, per_day: int, rng: random.Random) -> list[Scripted]:
    events: list[Scripted] = []
    weights = [w for _s, w in SUBJECTS]
    order = 0
    key = 0
    for day in range(days):
        base = START + timedelta(days=day)
        burst_at = base + timedelta(hours=rng.uniform(7, 15))
        burst = rng.choice(BURSTS)
        for n in range(per_day):
            order += 1
            key += 1
            if n < 4:  # a handful of customers hit the same problem within half an hour: an incident
                at = burst_at + timedelta(minutes=rng.uniform(0, 30))
                subject = f"{burst} ({['', 'again', 'urgent?', 'help'][n]})".replace(" ()", "")
                sender = f"burst{day}-{n}@customer{n}.example"
            else:
                # most mail in working hours, some at night and on weekends
                hour = rng.uniform(6, 18) if rng.random() < 0.8 else rng.uniform(0, 24)
                at = base + timedelta(hours=hour, seconds=rng.randint(0, 59))
                # the usual topics, each with details of its own (order and account numbers), so
                # unrelated tickets do not look alike; only the bursts are one incident
                subject = rng.choices([s for s, _w in SUBJECTS], weights)[0] + " " + " ".join(
                    str(rng.randint(10_000, 99_999)) for _ in range(4))
                sender = f"c{key}@customer{key % 97}.example"
            events.append(Scripted(at, order, "open", key, f"{subject}\n{sender}"))
            t = at
            roll = rng.random()
            if roll < 0.01:
                continue  # nobody ever answers within the horizon: clocks run out, escalations climb
            if rng.random() < 0.95:
                t += timedelta(minutes=rng.expovariate(1 / 30))
                events.append(Scripted(t, 0, "agent", key))
            if rng.random() < 0.3:
                t += timedelta(minutes=rng.uniform(5, 120))
                events.append(Scripted(t, 0, "wait", key))
                t += timedelta(hours=rng.expovariate(1 / 10))
                events.append(Scripted(t, 0, "customer", key))
            if rng.random() < 0.2:
                t += timedelta(minutes=rng.uniform(1, 240))
                events.append(Scripted(t, 0, "customer", key))
            if rng.random() < 0.05:
                t += timedelta(minutes=rng.uniform(1, 60))
                events.append(Scripted(t, 0, "request", key))
            if rng.random() < 0.9:
                t += timedelta(minutes=rng.expovariate(1 / 30))
                events.append(Scripted(t, 0, "ack", key))
            if rng.random() < 0.98:
                t += timedelta(hours=rng.expovariate(1 / 12))
                events.append(Scripted(t, 0, "resolve", key))
    for index, event in enumerate(sorted(events)):
        event.order = index
    return sorted(events)


def _message(ticket: Ticket, kind: str, sender: str, at: datetime, serial: int) -> None:
    message = Message.create(dedupe_key=f"l5-{serial}", sha256=f"{serial:064x}", kind=kind, from_addr=sender,
                             subject=ticket.subject, received_at=at, raw=b"")
    tickets.add_message(ticket, message, at)


def _apply(event: Scripted, refs: dict[int, int], ruleset, serial: int) -> None:
    at = event.at
    if event.action == "open":
        subject, sender = event.detail.split("\n")
        ticket = tickets.open_ticket(subject=subject, normalised_subject=subject.lower(), requester=sender,
                                     requester_name="", severity=ruleset.severity_for(subject, ""),
                                     reference_prefix=ruleset.reference_prefix, now=at, reason="l5")
        _message(ticket, "customer", sender, at, serial)
        incidents.link_new_ticket(ticket, ruleset, at)
        refs[event.key] = ticket.id
        return
    ticket = Ticket.get_by_id(refs[event.key])
    try:
        if event.action == "agent":
            _message(ticket, "agent", "alice@example.com", at, serial)
        elif event.action == "customer":
            _message(ticket, "customer", ticket.requester, at, serial)
        elif event.action == "wait":
            tickets.wait_on_customer(ticket, "alice@example.com", at, via="l5")
        elif event.action == "ack":
            tickets.acknowledge(ticket, "bob@example.com", at, via="l5")
        elif event.action == "request":
            tickets.request_escalation(ticket, "carol@example.com", at, via="l5")
        elif event.action == "resolve":
            tickets.resolve(ticket, "bob@example.com", at, via="l5")
    except TicketStateError:
        pass  # the script asked for something the ticket's state does not allow (e.g. ack a resolved one)


@dataclass
class L5Result:
    tickets: int
    ticks: int
    steps_taken: int
    notifications: int
    report: dict


def run_l5(db_path: Path, *, days: int, per_day: int, seed: int = 5, fast_disk: bool = False,
           rules_path: Path = REPO / "rules.yaml") -> L5Result:
    database = db.connect(f"sqlite:///{db_path}")
    if fast_disk:  # a load run measures the rules, not fsync
        database.execute_sql("PRAGMA synchronous=OFF")
    renderer = Renderer()
    ruleset = load_ruleset(rules_path, template_names=renderer.names())
    script = _script(days, per_day, random.Random(seed))
    end = START + timedelta(days=days)
    refs: dict[int, int] = {}
    position = ticks = 0
    while True:
        next_event = script[position].at if position < len(script) else None
        due = (Ticket.select(Ticket.next_due_at).where(Ticket.status.in_(ACTIVE_STATUSES)
                                                       & Ticket.next_due_at.is_null(False))
               .order_by(Ticket.next_due_at).limit(1).first())
        moments = [m for m in (next_event, due.next_due_at if due else None) if m is not None]
        if not moments or min(moments) > end:
            break
        now = min(moments)
        # like `escalate run --once --now T`: the mail of that moment, then the tick
        with db.write_transaction():
            while position < len(script) and script[position].at == now:
                _apply(script[position], refs, ruleset, position)
                position += 1
        engine.tick(ruleset, renderer, SECRET, now)
        ticks += 1
    report = simulate.simulate(ruleset, START, end)
    notifications = Outbox.select().where(Outbox.kind.in_(("escalation", "reminder", "next-tier"))).count()
    return L5Result(tickets=len(refs), ticks=ticks, steps_taken=report["actual"], notifications=notifications,
                    report=report)
