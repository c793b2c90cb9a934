"""The escalation ladder's promises over random rule sets and random tick times (a seeded
generator, so a failure names the seed that reproduces it), on a real SQLite database:

- at most one mail to the tier groups per ticket per tick;
- never a mail to a tier below the one the ladder has reached, until the ladder ends;
- "Reminder N" counts from 1 within each tier and only goes up;
- a ladder nobody answers ends: it has a bounded number of mails;
- `rules simulate` (the same decision function, in memory) predicts the engine's steps exactly
  when the daemon ticks whenever a ticket falls due (as simulate's ideal daemon does).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from escalate.engine import tick as engine
from escalate.outbound.templates import Renderer
from escalate.reports import simulate
from escalate.rules.loader import load_ruleset
from escalate.store import db
from escalate.store.models import Message, Outbox, Ticket
from escalate.tickets import lifecycle as tickets
from peewee import fn

SECRET = b"p" * 32
T0 = datetime(2026, 11, 2, 7, 0, tzinfo=timezone.utc)  # a Monday
GROUPS = {"tier1@example.com": 1, "tier2@example.com": 2, "tier3@example.com": 3}
LADDER_KINDS = ("escalation", "reminder", "next-tier")

HEAD = """\
version: 1
timezone: UTC
support_address: support@example.com
calendars:
  office:
    hours:
      mon-fri: "08:00-18:00"
severities:
  urgent:
    keywords: [outage]
    first_response: 15m
    next_response: 30m
    resolution: 2h
  normal:
    default: true
    first_response: 1h
    next_response: 2h
    resolution: 4h
    calendar: office
tiers:
  - {level: 1, name: One, group: tier1@example.com, roster: [a1@example.com], lead: l1@example.com}
  - {level: 2, name: Two, group: tier2@example.com, roster: [a2@example.com], lead: l2@example.com}
  - {level: 3, name: Three, group: tier3@example.com, roster: [a3@example.com], lead: l3@example.com}
ladder:
  top_reminders: %(top)d
rules:
"""

CRITERIA = ["no_first_response_for: %dm", "unresolved_for: %dm", "past_target: first_response",
            "past_target: resolution", "past_target: next_response", "no_update_for: %dm", "max_age: %dm"]


def random_rules(rng: random.Random) -> str:
    text = HEAD % {"top": rng.randint(0, 3)}
    for n, criterion in enumerate(rng.sample(CRITERIA, rng.randint(1, 5))):  # distinct: overlapping rules are refused
        if "%d" in criterion:
            criterion %= rng.choice((10, 20, 45, 90, 180))
        when = [criterion]
        if rng.random() < 0.4:
            when.append(f"severity: {rng.choice(('urgent', 'normal'))}")
        then = [f"escalate_to: {rng.randint(1, 3)}"]
        if rng.random() < 0.8:
            then.append(f"repeat_every: {rng.choice((10, 15, 30, 60))}m")
            if rng.random() < 0.6:
                then.append(f"next_tier_after: {rng.randint(0, 3)}")
        text += f"  - name: rule-{n}\n    description: Random rule {n}.\n    when:\n"
        text += "".join(f"      {line}\n" for line in when)
        text += "    then:\n" + "".join(f"      {line}\n" for line in then)
    return text


def ladder_mails(ticket_id: int) -> list[Outbox]:
    return list(Outbox.select().where((Outbox.ticket == ticket_id) & Outbox.kind.in_(LADDER_KINDS))
                .order_by(Outbox.id))


def ladder_bound(ruleset) -> int:
    """The most mails one ladder can send: every tier's first mail and its reminders, up to the top."""
    steps = max((rule.next_tier_after or 0) for rule in ruleset.rules) + 1
    return len(ruleset.tiers) * (steps + ruleset.top_reminders + 1)


def check_invariants(ruleset, ticket_ids: list[int], mails_per_tick: dict[tuple[int, int], int]) -> None:
    for (ticket_id, tick_no), count in mails_per_tick.items():
        assert count <= 1, f"ticket {ticket_id} got {count} tier mails in tick {tick_no}"
    for ticket_id in ticket_ids:
        by_ladder: dict[int | None, list[Outbox]] = {}
        for mail in ladder_mails(ticket_id):
            by_ladder.setdefault(mail.escalation_id, []).append(mail)
        for ladder_id, mails in by_ladder.items():
            tiers = [GROUPS[m.recipients[0]] for m in mails]
            assert tiers == sorted(tiers), f"ladder {ladder_id} went down the tiers: {tiers}"
            for tier in set(tiers):
                numbers = [m.step for m in mails if GROUPS[m.recipients[0]] == tier]
                assert numbers == sorted(set(numbers)), f"reminder numbers at tier {tier}: {numbers}"
                assert numbers[0] >= 0
            assert len(mails) <= ladder_bound(ruleset), f"ladder {ladder_id} never ended: {len(mails)} mails"
        assert len(by_ladder) <= len(ruleset.rules) + 1  # each ladder is started by a rule firing


def run_case(tmp_path, seed: int, *, max_gap: int, acks: bool, on_due: bool = False) -> None:
    rng = random.Random(seed)
    path = tmp_path / f"rules-{seed}.yaml"
    path.write_text(random_rules(rng), encoding="utf-8")
    db.connect(f"sqlite:///{tmp_path / f'ladder-{seed}.db'}")
    renderer = Renderer()
    ruleset = load_ruleset(path, template_names=renderer.names())
    ids = []
    with db.write_transaction():
        for n in range(3):
            severity = rng.choice(("urgent", "normal"))
            created = T0 + timedelta(minutes=rng.randint(0, 120))
            ticket = tickets.open_ticket(subject=f"ticket {n}", normalised_subject=f"ticket {n}",
                                         requester=f"c{n}@customer.example", requester_name="", severity=severity,
                                         reference_prefix="T", now=created, reason="test")
            ids.append(ticket.id)
    happenings = []  # (when, ticket id, what)
    for ticket_id in ids:
        if rng.random() < 0.5:
            happenings.append((T0 + timedelta(minutes=rng.randint(30, 600)), ticket_id, "customer"))
        if acks and rng.random() < 0.5:
            happenings.append((T0 + timedelta(minutes=rng.randint(30, 600)), ticket_id, "ack"))
    happenings.sort()
    now, until, tick_no = T0, T0 + timedelta(hours=14), 0
    mails_per_tick: dict[tuple[int, int], int] = {}
    while now < until:
        step = now + timedelta(minutes=rng.randint(1, max_gap))
        if on_due:  # also when a ticket falls due or something happens, as `rules simulate`'s ideal daemon
            due = Ticket.select(fn.MIN(Ticket.next_due_at)).where(Ticket.next_due_at > now).scalar()
            moments = [m for m in (due, happenings[0][0] if happenings else None) if m is not None and m > now]
            step = min([step, *moments])
        now = step
        while happenings and happenings[0][0] <= now:
            at, ticket_id, what = happenings.pop(0)
            with db.write_transaction():
                ticket = Ticket.get_by_id(ticket_id)
                if ticket.created_at > at or ticket.status not in ("new", "open", "waiting"):
                    continue
                if what == "customer":
                    message = Message.create(dedupe_key=f"m{ticket_id}-{at.timestamp()}", sha256="x", kind="customer",
                                             from_addr=ticket.requester, received_at=at, raw=b"")
                    tickets.add_message(ticket, message, at)
                else:
                    tickets.acknowledge(ticket, "a2@example.com", at, via="test", tier=2)
        before = {ticket_id: len(ladder_mails(ticket_id)) for ticket_id in ids}
        engine.tick(ruleset, renderer, SECRET, now)
        tick_no += 1
        for ticket_id in ids:
            mails_per_tick[(ticket_id, tick_no)] = len(ladder_mails(ticket_id)) - before[ticket_id]
    check_invariants(ruleset, ids, mails_per_tick)
    return ruleset, until


@pytest.mark.parametrize("seed", range(12))
def test_ladder_invariants_over_random_rules_and_tick_times(tmp_path, seed):
    """Ticks at random times, gaps up to two hours (a daemon that stops and starts), with
    acknowledgements and customer follow-ups at random moments."""
    run_case(tmp_path, seed, max_gap=120, acks=True)


@pytest.mark.parametrize("seed", range(100, 112))
def test_rules_simulate_agrees_with_the_engine_step_for_step(tmp_path, seed):
    """Ticked whenever a ticket falls due or something happens to it (and at random times
    between), the engine takes exactly the steps `rules simulate` predicts from the audit trail,
    and no other. (A daemon that ticks later takes fewer: one mail says where the ladder is.)"""
    ruleset, until = run_case(tmp_path, seed, max_gap=9, acks=True, on_due=True)
    report = simulate.simulate(ruleset, T0 - timedelta(hours=1), until)
    assert report["only_predicted"] == [] and report["only_actual"] == [], (seed, report)
    assert report["agree"] == report["actual"] == len(report["predicted"])
    # and each step the audit trail records is one mail in the outbox
    assert report["actual"] == Outbox.select().where(Outbox.kind.in_(LADDER_KINDS)).count()
