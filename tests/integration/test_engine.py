"""The tick on a real SQLite database, with the clock moved (never slept)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import peewee
import pytest
from escalate.engine import tick as engine
from escalate.outbound import notify
from escalate.outbound.templates import Renderer
from escalate.rules.loader import load_ruleset
from escalate.store import db
from escalate.store.models import Escalation, Event, Outbox, Ticket
from escalate.tickets import lifecycle as tickets

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
SECRET = b"s" * 32


@pytest.fixture
def world(tmp_path, rules_file):
    db.connect(f"sqlite:///{tmp_path / 'engine.db'}")
    renderer = Renderer()
    ruleset = load_ruleset(rules_file(), template_names=renderer.names())

    def tick(minutes: float) -> engine.TickResult:
        return engine.tick(ruleset, renderer, SECRET, T0 + timedelta(minutes=minutes))
    return ruleset, tick


def open_ticket(subject: str, severity: str) -> Ticket:
    with db.write_transaction():
        return tickets.open_ticket(subject=subject, normalised_subject=subject.lower(), requester="c@customer.example",
                                   requester_name="", severity=severity, reference_prefix="T", now=T0, reason="test")


def sent_steps(ticket: Ticket) -> list[tuple[int, int]]:
    return [(o.step, o.tier) for o in Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id)]


def test_a_tick_reads_only_the_tickets_that_are_due(world):
    _ruleset, tick = world
    quiet = [open_ticket(f"question {i}", "normal") for i in range(40)]
    urgent = [open_ticket(f"outage {i}", "urgent") for i in range(3)]
    assert tick(0).evaluated == 43  # every new ticket is looked at once
    result = tick(16)
    assert result.evaluated == 3 and result.notifications == 3
    assert sorted(result.escalated) == sorted(t.ref for t in urgent)
    assert tick(17).evaluated == 0
    # the tier each reached is stored (a batch writes the tickets' tiers together at its end)
    assert [Ticket.get_by_id(t.id).tier for t in urgent] == [1, 1, 1]
    assert Ticket.get_by_id(quiet[0].id).tier is None
    # each mail names its own ticket's escalation (a batch writes them together, then its mail)
    for mail in Outbox.select():
        assert mail.escalation.ticket_id == mail.ticket_id and mail.escalation.rule == mail.rule
    quiet_ticket = Ticket.get_by_id(quiet[0].id)
    assert quiet_ticket.next_due_at == T0 + timedelta(days=2)  # the resolution target, not the next tick


def test_evaluating_the_same_moment_twice_queues_one_notification(world):
    ruleset, tick = world
    ticket = open_ticket("outage", "urgent")
    tick(16)
    assert sent_steps(ticket) == [(0, 1)]
    # a restart inside the tick: the ticket is evaluated again at the same moment
    Ticket.update(next_due_at=T0).where(Ticket.id == ticket.id).execute()
    assert tick(16).notifications == 0
    assert sent_steps(ticket) == [(0, 1)]
    # and the database itself refuses a second row for the same (ticket, rule, step, due)
    row = Outbox.get(Outbox.ticket == ticket)
    with pytest.raises(peewee.IntegrityError), db.write_transaction():
        Outbox.create(ticket=ticket, kind="escalation", rule=row.rule, step=row.step, due_at=row.due_at, tier=1,
                      message_id="other@example.com", mail_from="a@b", recipients=[], subject="", raw=b"",
                      next_attempt_at=T0, created_at=T0)


def test_reminders_repeat_then_climb_and_a_long_gap_sends_one_catch_up(world):
    _ruleset, tick = world
    ticket = open_ticket("outage", "urgent")
    for minutes in (16, 26, 36):
        tick(minutes)
    assert sent_steps(ticket) == [(0, 1), (1, 1), (2, 1)]
    # the daemon was down for two hours: one notification, at the tier time says (tier 2, its third
    # reminder), not the burst of every step missed; the tier it climbed to hears of it before the
    # ladder gives up, one interval later
    tick(160)
    assert sent_steps(ticket) == [(0, 1), (1, 1), (2, 1), (3, 2)]
    assert Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id.desc()).first().kind == "next-tier"
    assert Ticket.get_by_id(ticket.id).tier == 2
    tick(170)
    last = Outbox.select().where(Outbox.ticket == ticket).order_by(Outbox.id.desc()).first()
    assert (last.kind, last.recipients) == ("unanswered", ["lead2@example.com"])
    assert Escalation.get(Escalation.ticket == ticket).state == "exhausted"
    for minutes in (200, 300, 1000):  # it has ended: nothing more, however long nobody answers
        tick(minutes)
    assert Outbox.select().where(Outbox.ticket == ticket).count() == 5


def test_acknowledging_stops_the_repeats(world):
    _ruleset, tick = world
    ticket = open_ticket("outage", "urgent")
    tick(16)
    with db.write_transaction():
        tickets.acknowledge(Ticket.get_by_id(ticket.id), "alice@example.com", T0 + timedelta(minutes=20), via="test")
    for minutes in (26, 36, 46, 100):
        tick(minutes)
    assert sent_steps(ticket) == [(0, 1)]
    assert Escalation.get(Escalation.ticket == ticket).state == "acknowledged"


def test_a_resolved_ticket_is_never_due(world):
    _ruleset, tick = world
    ticket = open_ticket("outage", "urgent")
    with db.write_transaction():
        tickets.resolve(Ticket.get_by_id(ticket.id), "bob@example.com", T0 + timedelta(minutes=5), via="test")
    assert Ticket.get_by_id(ticket.id).next_due_at is None
    for minutes in (16, 300, 5000):
        assert tick(minutes).evaluated == 0
    assert sent_steps(ticket) == []


def test_simulate_reports_progress_over_the_whole_history(world):
    from escalate.reports.simulate import simulate

    ruleset, tick = world
    for n in range(1000):  # more than one chunk of 900
        open_ticket(f"outage {n}", "urgent")
    seen: list[tuple[int, int]] = []
    result = simulate(ruleset, T0 - timedelta(hours=1), T0 + timedelta(minutes=20), progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 1000) and seen[-1] == (1000, 1000) and len(seen) >= 3
    assert result["tickets"] == 1000


def test_a_ticket_that_fails_after_queueing_takes_its_notification_with_it(world, monkeypatch):
    """A batch writes its notifications together at the end; a ticket rolled back to its savepoint
    must not leave its pending mail behind (it would name an escalation that no longer exists)."""
    _ruleset, tick = world
    broken, fine = open_ticket("outage one", "urgent"), open_ticket("outage two", "urgent")
    real = engine._queue_mail

    def escalate_then_fail(ticket, *args, **kwargs):
        queued = real(ticket, *args, **kwargs)
        if ticket.id == broken.id:
            raise RuntimeError("a bug after the mail was queued")
        return queued

    monkeypatch.setattr(engine, "_queue_mail", escalate_then_fail)
    result = tick(16)
    assert result.failed == [broken.ref] and result.notifications == 1
    assert sent_steps(broken) == [] and not Escalation.select().where(Escalation.ticket == broken).exists()
    assert sent_steps(fine) == [(0, 1)]
    assert Ticket.get_by_id(fine.id).tier == 1 and Ticket.get_by_id(broken.id).tier is None
    # the batch writes its new escalations at the end too: the mail names the one it announces
    assert Outbox.get(Outbox.ticket == fine).escalation_id == Escalation.get(Escalation.ticket == fine).id
    # its audit events went with it too (a batch writes them at the end, like its mail)
    assert not Event.select().where((Event.ticket == broken) & (Event.action == "escalated")).exists()
    assert Event.select().where((Event.ticket == fine) & (Event.action == "escalated")).count() == 1
    assert Ticket.get_by_id(broken.id).next_due_at == T0 + timedelta(minutes=16) + engine.RETRY_AFTER_FAILURE
    monkeypatch.setattr(engine, "_queue_mail", real)
    assert tick(21).notifications == 1 and sent_steps(broken) == [(0, 1)]  # retried, and escalated then


def test_a_reminder_that_fails_leaves_its_escalation_where_it_was(world, monkeypatch):
    """A reminder moves a stored escalation on (its step, its tier) straight away, inside the
    ticket's savepoint; a failure after that must take the move back with the ticket's mail."""
    _ruleset, tick = world
    ticket = open_ticket("outage", "urgent")
    tick(16)
    real = engine._queue_mail

    def remind_then_fail(failing, *args, **kwargs):
        real(failing, *args, **kwargs)
        raise RuntimeError("a bug after the reminder was recorded")

    monkeypatch.setattr(engine, "_queue_mail", remind_then_fail)
    assert tick(26).failed == [ticket.ref]
    escalation = Escalation.get(Escalation.ticket == ticket)
    assert (escalation.step, escalation.last_step_due_at) == (0, T0 + timedelta(minutes=15))
    assert sent_steps(ticket) == [(0, 1)]
    monkeypatch.setattr(engine, "_queue_mail", real)
    assert tick(31).notifications == 1 and sent_steps(ticket) == [(0, 1), (1, 1)]
    assert Escalation.get(Escalation.ticket == ticket).step == 1


def test_an_escalation_mail_shows_the_latest_history_with_its_own_step(world):
    """The mail's history is the ticket's last 12 audit events, oldest first, including the step
    it announces (also an event stored at the very moment of the tick comes before the tick's own).
    The renderer reads it as of the decision: what is recorded later does not show."""
    _ruleset, tick = world
    ticket = open_ticket("outage", "urgent")
    other = open_ticket("second outage", "urgent")
    with db.write_transaction():
        for n in range(14):
            tickets.add_note(ticket, by="agent@support.example", via="email", text=f"note {n}",
                             now=T0 + timedelta(minutes=16 if n >= 12 else n))
    assert tick(16).notifications == 2
    expected = {}
    for escalated in (ticket, other):
        stored = list(Event.select().where(Event.ticket == escalated).order_by(Event.at.desc(), Event.id.desc())
                      .limit(12))
        # a run of the same step by the same actor is one line, with how many times and since when
        collapsed: list[list] = []
        for e in reversed(stored):
            if collapsed and collapsed[-1][:2] == [e.actor, e.action]:
                collapsed[-1][3] += 1
            else:
                collapsed.append([e.actor, e.action, e.rule, 1])
        expected[escalated.id] = [tuple(item) for item in collapsed]
    with db.write_transaction():  # recorded after the mail was decided: not in it
        tickets.add_note(ticket, by="agent@support.example", via="email", text="later", now=T0 + timedelta(minutes=17))
    for escalated in (ticket, other):
        mail = Outbox.get(Outbox.ticket == escalated)
        shown = notify.template_variables(mail.context, mail.ticket_id, mail.created_at)["history"]
        assert [(h["actor"], h["action"], h["rule"], h["times"]) for h in shown] == expected[escalated.id]
        assert shown[-1]["action"] == "escalated" and shown[-1]["text"] == "escalated to tier 1"
    mail = Outbox.get(Outbox.ticket == ticket)
    shown = notify.template_variables(mail.context, ticket.id, mail.created_at)["history"]
    assert [h["action"] for h in shown][-2:] == ["note", "escalated"]
    assert shown[-2]["text"] == f"internal note {shown[-2]['times']} times since {shown[-2]['at']}"
    assert "history" not in mail.context  # nothing the tick had to read or store for it
