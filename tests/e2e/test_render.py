"""The tick decides, the sender renders (render.py): against real aiosmtpd, SQLite and PostgreSQL.

A tick records each notification as an outbox row with its template, a snapshot of the template's
variables and a fixed Message-ID; the sender renders it into bytes before it claims anything. These
tests show the escalating tick's mail still arrives, that a template which breaks fails its row
with the reason instead of losing the mail, and that two senders sharing PostgreSQL never render
the same row twice.
"""

from __future__ import annotations

import collections
import email
import email.policy
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from escalate.engine import tick as engine
from escalate.outbound import notify, outbox, render
from escalate.outbound.templates import Renderer, shipped_templates_dir
from escalate.store import db, rows
from escalate.store.models import Delivery, Message, Outbox, Ticket
from escalate.tickets import lifecycle as tickets

from .test_outbox import DUE, SECRET, T0, World


@pytest.fixture
def world(tmp_path, rules_file, smtp_sink) -> World:
    return World(tmp_path, rules_file, smtp_sink)


def open_urgent(count: int) -> list[str]:
    refs = []
    with db.write_transaction():
        for i in range(count):
            ticket = tickets.open_ticket(subject=f"Checkout down {i}", normalised_subject=f"checkout down {i}",
                                         requester=f"shop{i}@customer.example", requester_name="",
                                         severity="urgent", reference_prefix="T", now=T0, reason="test")
            refs.append(ticket.ref)
    return refs


def test_an_escalating_tick_queues_undrawn_mail_and_the_sender_renders_and_sends_it(world):
    refs = open_urgent(100)
    result = engine.tick(world.ruleset, world.renderer, SECRET, T0 + timedelta(minutes=16))
    assert result.notifications == 100
    # decided, not yet rendered: no bytes, and no delivery the sender could claim
    assert Outbox.select().where(Outbox.context.is_null(False) & (Outbox.raw == b"")).count() == 100
    assert {d.status for d in Delivery.select()} == {render.WAITING}

    sent = world.send(T0 + timedelta(minutes=16))
    assert sent.sent == 100 and world.statuses() == {"sent": 100}
    tagged = collections.Counter(m.message["X-Escalate-Ticket"] for m in world.sink.messages)
    assert tagged == {ref: 1 for ref in refs}
    for mail in world.sink.messages:
        assert mail.rcpt_tos == ["tier1@example.com"]
        assert str(mail.message["Subject"]).startswith(f"[{mail.message['X-Escalate-Ticket']}] Escalation to Frontline")
        text = mail.message.get_body(("plain",)).get_content()
        assert "urgent-no-first-response" in text and "Checkout down" in text
    # the rendered row keeps its bytes, and the snapshot it was rendered from is not kept twice
    row = Outbox.get()
    assert bytes(row.raw).startswith(b"Subject: ") and row.context is None
    assert email.message_from_bytes(bytes(row.raw), policy=email.policy.default)["Message-ID"] == f"<{row.message_id}>"


def test_the_mail_shows_the_ticket_as_it_stood_when_the_mail_was_decided(world):
    """The ticket's last customer message and history are read by the renderer (the tick stores
    neither), as of the decision: a message or a note that came after it does not show."""
    ref = open_urgent(1)[0]
    with db.write_transaction():
        ticket = Ticket.get(Ticket.ref == ref)
        rows.create(Message, ticket=ticket, dedupe_key="first@customer.example", sha256="a" * 64, kind="customer",
                    from_addr="shop0@customer.example", received_at=T0, raw=b"",
                    body_text="> quoted\nPayment page returns 502 since 9:00.", new_text="Payment page returns 502 since 9:00.")
    assert engine.tick(world.ruleset, world.renderer, SECRET, T0 + timedelta(minutes=16)).notifications == 1
    later = T0 + timedelta(minutes=17)
    with db.write_transaction():
        rows.create(Message, ticket=ticket, dedupe_key="second@customer.example", sha256="b" * 64, kind="customer",
                    from_addr="shop0@customer.example", received_at=later, raw=b"", new_text="Now the cart fails too.")
        tickets.add_note(ticket, by="agent@support.example", now=later, text="looking", via="email")

    assert world.send(later).sent == 1
    text = world.sink.messages[0].message.get_body(("plain",)).get_content()
    customer_part = text.split("Last message from the customer", 1)[1].split("History", 1)[0]
    assert "Payment page returns 502 since 9:00." in customer_part and "quoted" not in customer_part
    assert "cart fails" not in text
    history = text.split("History", 1)[1].split("How to act", 1)[0]
    assert "escalated to tier 1 (urgent-no-first-response)" in history and "note" not in history
    assert history.index("ticket opened") < history.index("escalated")


def _admin_templates(tmp_path: Path, text_source: str) -> Path:
    directory = tmp_path / "admin-templates"
    directory.mkdir(exist_ok=True)
    (directory / "escalation.txt.j2").write_text(text_source, encoding="utf-8")
    (directory / "escalation.html.j2").write_text(
        (shipped_templates_dir() / "escalation.html.j2").read_text(encoding="utf-8"), encoding="utf-8")
    return directory


def test_a_template_that_breaks_fails_its_row_with_the_reason_and_the_mail_goes_once_it_is_fixed(world, tmp_path):
    broken = Renderer(_admin_templates(tmp_path, "{{ ticket.no_such_field }}\n"))
    [row] = world.escalate(1)
    tell_lead = notify.lead_notifier(world.ruleset, broken, SECRET)
    result = world.send(DUE, renderer=broken, on_failed=tell_lead)

    failed = Outbox.get_by_id(row.id)
    assert failed.status == "failed" and bytes(failed.raw) == b"" and failed.context is not None
    assert "could not render" in failed.last_error and "escalation.txt.j2" in failed.last_error
    assert "no_such_field" in failed.last_error
    # the lead heard of it, with the reason (their notice renders with the shipped template)
    assert result.sent == 1 and [m.rcpt_tos for m in world.sink.messages] == [["lead1@example.com"]]
    notice = world.sink.messages[0].message
    assert f"#{row.id}" in str(notice["Subject"]) and "no_such_field" in notice.get_body(("plain",)).get_content()
    # nothing can send a mail without bytes: its recipient waits, even when a person retries it
    assert [d.status for d in Delivery.select().where(Delivery.outbox == row.id)] == [render.WAITING]
    outbox.retry([row.id], DUE + timedelta(seconds=10))
    assert world.send(DUE + timedelta(seconds=10), renderer=broken, on_failed=tell_lead).sent == 0
    # tried again after the back-off, still broken: the lead is not told a second time
    assert world.send(DUE + timedelta(minutes=1), renderer=broken, on_failed=tell_lead).sent == 0
    assert len(world.sink.messages) == 1 and Outbox.get_by_id(row.id).attempts == 2

    fixed = Renderer(_admin_templates(tmp_path, (shipped_templates_dir() / "escalation.txt.j2").read_text(encoding="utf-8")))
    assert render.render_pending(fixed, DUE + timedelta(minutes=5)).rendered == 1
    recovered = Outbox.get_by_id(row.id)
    assert (recovered.status, recovered.last_error, recovered.context) == ("queued", None, None)
    again = world.send(DUE + timedelta(minutes=5), renderer=fixed)
    assert again.sent == 1
    escalation = world.sink.messages[-1]
    assert escalation.rcpt_tos == ["tier1@example.com"] and escalation.message["Message-ID"] == f"<{row.message_id}>"
    assert Outbox.get_by_id(row.id).status == "sent"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_senders_sharing_postgresql_never_render_the_same_row(world, database_url):
    db.connect(database_url)
    world.escalate(300)
    barrier = threading.Barrier(2)
    results: list[render.RenderResult] = []

    def sender() -> None:
        barrier.wait()
        try:
            results.append(render.render_pending(Renderer(), DUE, batch=25))
        finally:
            db.close()  # this thread's connection

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2
    # every row composed by exactly one of them (SKIP LOCKED), none left, none failed
    assert sum(r.composed for r in results) == 300 and sum(r.rendered for r in results) == 300
    assert all(r.rendered > 0 for r in results), [r.rendered for r in results]  # both really worked
    assert not Outbox.select().where(Outbox.context.is_null(False)).exists()
    assert {d.status for d in Delivery.select()} == {"queued"}
    assert world.send(DUE).sent == 300
    assert len({m.message["Message-ID"] for m in world.sink.messages}) == 300
