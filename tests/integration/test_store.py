"""store/: the hand-written statements answer the questions their names ask, on SQLite and on
PostgreSQL (one text, `?` placeholders translated there), including values that contain `%`
and `?`; and SQLite's relaxed commit mode is confined to its block."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from escalate.store import db, durability, messages, outbox, tickets
from escalate.reports import queries
from escalate.store.models import Delivery, Event, Message, Outbox, Quarantine, Ticket, database

BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)
ODD = "odd%s?%%id@example.org"  # what a naive placeholder rewrite would mangle


def _ticket(ref: str, requester: str = "a@example.org", subject: str = "printer", *, status: str = "open",
            updated_at: datetime = NOW) -> Ticket:
    return Ticket.create(ref=ref, subject=subject, normalised_subject=subject, requester=requester,
                         severity="normal", status=status, created_at=NOW, updated_at=updated_at)


def _message(key: str, message_id: str | None, ticket: Ticket | None = None, raw: bytes = b"raw") -> Message:
    return Message.create(dedupe_key=key, message_id=message_id, sha256=key[-8:].rjust(64, "0"), kind="customer",
                          received_at=NOW, raw=raw, ticket=ticket)


def _outbox(message_id: str, ticket: Ticket | None, recipients: list[str]) -> Outbox:
    row = Outbox.create(ticket=ticket, kind="escalation", message_id=message_id, mail_from="support@example.org",
                        recipients=recipients, subject="s", raw=b"mail", next_attempt_at=NOW, created_at=NOW)
    for recipient in recipients:
        Delivery.create(outbox=row, recipient=recipient, mail_from="support@example.org",
                        next_attempt_at=NOW, created_at=NOW)
    return row


@BOTH
def test_message_lookups(database_url):
    db.connect(database_url)
    ticket = _ticket("T-1")
    first = _message("<m1@example.org>", "m1@example.org", ticket, raw=b"\x00stored\xff")
    _message(ODD, ODD)
    _message("sha256:" + "f" * 64, None)
    assert messages.dedupe_key_exists("<m1@example.org>") and messages.dedupe_key_exists(ODD)
    assert not messages.dedupe_key_exists("<m2@example.org>") and not messages.dedupe_key_exists("odd%s")
    found = messages.by_message_id_or_key("m1@example.org", "sha256:" + "f" * 64)
    assert sorted(row[2] for row in found) == ["<m1@example.org>", "sha256:" + "f" * 64]
    assert messages.by_message_id_or_key("nobody@example.org", "<nobody@example.org>") == []
    assert messages.raw(first.id) == b"\x00stored\xff"
    # only mail on a ticket threads
    assert messages.tickets_by_message_id(["m1@example.org", ODD, "none@example.org"]) == {"m1@example.org": ticket.id}


@BOTH
def test_ticket_lookups(database_url):
    db.connect(database_url)
    old = _ticket("T-1", updated_at=NOW - timedelta(days=2))
    newer = _ticket("T-2", updated_at=NOW - timedelta(hours=1))
    _ticket("T-3", status="closed", updated_at=NOW)  # the latest, but closed
    _ticket("T-4", requester="b@example.org", updated_at=NOW)  # another requester
    _ticket("T-5", subject="export", updated_at=NOW)  # another subject
    assert tickets.id_by_ref("T-1") == old.id and tickets.id_by_ref("T-99") is None
    assert tickets.latest_by_subject("a@example.org", "printer", NOW - timedelta(days=3)) == newer.id
    assert tickets.latest_by_subject("a@example.org", "printer", NOW - timedelta(minutes=30)) is None
    assert tickets.latest_by_subject("c@example.org", "printer", NOW - timedelta(days=3)) is None


@BOTH
def test_outbox_lookups(database_url):
    db.connect(database_url)
    ticket = _ticket("T-1")
    about_ticket = _outbox("esc.1@example.org", ticket, ["t1@example.org"])
    digest = _outbox(ODD, None, ["t1@example.org"])
    assert outbox.message_id_exists(ODD) and not outbox.message_id_exists("esc.2@example.org")
    ids = ["esc.1@example.org", ODD, "other@example.org"]
    assert outbox.ids_by_message_id(ids) == {"esc.1@example.org": about_ticket.id, ODD: digest.id}
    assert outbox.ticketed_ids_by_message_id(ids) == {"esc.1@example.org": about_ticket.id}


@BOTH
def test_a_row_is_settled_sent_once_every_recipient_has_it(database_url):
    db.connect(database_url)
    both = _outbox("esc.1@example.org", None, ["a@example.org", "b@example.org"])
    one = _outbox("esc.2@example.org", None, ["c@example.org"])
    first_of_both = Delivery.get((Delivery.outbox == both) & (Delivery.recipient == "a@example.org"))
    only = Delivery.get(Delivery.outbox == one)
    with db.write_transaction():
        if db.shared():
            outbox.lock_rows([both.id, one.id])
        assert outbox.mark_sent([first_of_both.id, only.id], NOW) == 2
        assert outbox.settle_sent([both.id, one.id], NOW) == 1  # b@ has not got it yet
    assert (Outbox.get_by_id(both.id).status, Outbox.get_by_id(one.id).status) == ("queued", "sent")
    settled = Outbox.get_by_id(one.id)
    assert (settled.sent_at, settled.attempts) == (NOW, 1)
    assert (Delivery.get_by_id(only.id).status, Delivery.get_by_id(only.id).sent_at) == ("sent", NOW)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite has one instance: no leases
def test_leases_split_mail_from_chat_and_hold_against_other_owners(database_url):
    db.connect(database_url)
    mail = _outbox("esc.1@example.org", None, ["a@example.org", "b@example.org"])
    _outbox("esc.2@example.org", None, ["chat:ops"])
    later = _outbox("esc.3@example.org", None, ["c@example.org"])
    Delivery.update(next_attempt_at=NOW + timedelta(hours=1)).where(Delivery.outbox == later).execute()
    mail_ids = {d.id for d in Delivery.select().where(Delivery.outbox == mail)}
    with db.write_transaction():
        assert set(outbox.lease(NOW, 10, "me%s?", 60, chat=False)) == mail_ids
    assert {d.lease_owner for d in Delivery.select().where(Delivery.outbox == mail)} == {"me%s?"}
    with db.write_transaction():
        assert outbox.lease(NOW, 10, "other", 60, chat=False) == []  # held by me%s? for a minute
        chat = outbox.lease(NOW, 10, "other", 60, chat=True)
    assert [Delivery.get_by_id(row_id).recipient for row_id in chat] == ["chat:ops"]
    with db.write_transaction():
        assert set(outbox.lease(NOW, 1, "me%s?", 60, chat=False)) <= mail_ids  # our own come back, `batch` at most
        assert len(outbox.lease(NOW, 1, "me%s?", 60, chat=False)) == 1


@BOTH
def test_crash_safe_commits_hold_within_the_block_only(database_url):
    db.connect(database_url)
    if db.shared():
        with durability.crash_safe_commits():  # PostgreSQL: nothing to change, nothing run
            assert outbox.message_id_exists("esc.1@example.org") is False
        return
    synchronous = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}

    def mode() -> str:
        return synchronous[database.execute_sql("PRAGMA synchronous").fetchone()[0]]

    assert mode() == durability.DURABLE
    with pytest.raises(RuntimeError), durability.crash_safe_commits():
        assert mode() == durability.CRASH_SAFE
        raise RuntimeError("a failed send run")
    assert mode() == durability.DURABLE


@BOTH
def test_cap_lookups(database_url):
    db.connect(database_url)
    ticket, other = _ticket("T-1"), _ticket("T-2")
    counted = _outbox("esc.1@example.org", ticket, ["t1@example.org"])
    _outbox("esc.2@example.org", other, ["t1@example.org"])
    cancelled = _outbox("esc.3@example.org", ticket, ["t1@example.org"])
    Outbox.update(status="cancelled").where(Outbox.id == cancelled.id).execute()
    assert outbox.ticket_mail_times([ticket.id], NOW - timedelta(hours=1), ("queued", "sent")) == [(ticket.id, NOW)]
    assert outbox.ticket_mail_times([ticket.id], NOW, ("queued", "sent")) == []  # only after `since`
    Delivery.update(status="bounced", failed_at=NOW - timedelta(hours=2)).where(Delivery.outbox == counted).execute()
    Delivery.update(status="refused", failed_at=NOW - timedelta(hours=1), code=550).where(
        Delivery.outbox == cancelled).execute()
    assert outbox.last_permanent_failure("t1@example.org", NOW - timedelta(days=1)) == \
           (NOW - timedelta(hours=1), 550, "refused")
    assert outbox.last_permanent_failure("t1@example.org", NOW - timedelta(minutes=30)) is None
    assert outbox.last_permanent_failure("t2@example.org", NOW - timedelta(days=1)) is None


@BOTH
def test_sender_ticket_lookups(database_url):
    db.connect(database_url)
    newest_active = _ticket("T-1", updated_at=NOW)
    Ticket.update(created_at=NOW - timedelta(hours=3)).where(Ticket.id == newest_active.id).execute()
    closed = _ticket("T-2", status="closed")
    _ticket("T-3", requester="b@example.org")
    assert tickets.sender_tickets("a@example.org", NOW - timedelta(days=1), 10) == \
           [(closed.id, NOW, "closed"), (newest_active.id, NOW - timedelta(hours=3), "open")]
    assert tickets.sender_tickets("a@example.org", NOW - timedelta(days=1), 1) == [(closed.id, NOW, "closed")]
    assert tickets.latest_active("a@example.org") == newest_active.id
    assert tickets.latest_active("nobody@example.org") is None


@BOTH
def test_what_a_notification_shows_of_a_ticket(database_url):
    db.connect(database_url)
    ticket = _ticket("T-1")
    early = Message.create(dedupe_key="<1@x>", sha256="1", kind="customer", received_at=NOW - timedelta(hours=1),
                           raw=b"", ticket=ticket, new_text="first", from_addr="a@example.org")
    Message.create(dedupe_key="<2@x>", sha256="2", kind="customer", received_at=NOW + timedelta(hours=1),
                   raw=b"", ticket=ticket, new_text="after the decision")
    Message.create(dedupe_key="<3@x>", sha256="3", kind="agent", received_at=NOW, raw=b"", ticket=ticket)
    assert messages.last_from_customer(ticket.id, NOW) == ("first", "", "a@example.org", early.received_at)
    for minutes, action in ((0, "opened"), (0, "assigned"), (5, "escalated"), (60, "resolved")):
        Event.create(ticket=ticket, at=NOW - timedelta(minutes=60 - minutes), actor="escalate", action=action,
                     detail={"n": minutes})
    found = tickets.history(ticket.id, NOW - timedelta(minutes=30), 2)
    assert [(at, action) for at, _, action, _, _ in found] == \
           [(NOW - timedelta(minutes=55), "escalated"), (NOW - timedelta(minutes=60), "assigned")]


@BOTH
def test_a_tick_claims_the_oldest_due_tickets_first(database_url):
    db.connect(database_url)
    later, first, not_due = _ticket("T-1"), _ticket("T-2"), _ticket("T-3")
    for ticket, due in ((later, NOW - timedelta(minutes=1)), (first, NOW - timedelta(hours=1)),
                        (not_due, NOW + timedelta(minutes=1))):
        Ticket.update(next_due_at=due).where(Ticket.id == ticket.id).execute()
    with db.write_transaction():
        claimed = tickets.claim_due(NOW, 10, lock=db.shared())
    assert [(t.id, t.next_due_at) for t in claimed] == [(first.id, NOW - timedelta(hours=1)),
                                                         (later.id, NOW - timedelta(minutes=1))]
    with db.write_transaction():
        assert [t.id for t in tickets.claim_due(NOW, 1, lock=db.shared())] == [first.id]


@BOTH
def test_attachment_contents_are_found_by_their_digest(database_url):
    from escalate.store.models import Attachment

    db.connect(database_url)
    message = _message("<m1@example.org>", "m1@example.org")
    Attachment.create(message=message, filename="a.pdf", content_type="application/pdf", size=3,
                      stored_path="packs/1.pack", stored_offset=40, sha256="ab" * 32)
    Attachment.create(message=message, filename="b.pdf", content_type="application/pdf", size=3,
                      stored_path=None, sha256="cd" * 32)  # not kept (over the size limit)
    assert messages.stored_contents("ab" * 32) == ("packs/1.pack", 40)
    assert messages.stored_contents("cd" * 32) is None and messages.stored_contents("ef" * 32) is None


@BOTH
def test_what_the_rules_read_of_an_incident(database_url):
    from escalate.store import incidents
    from escalate.store.models import Incident, IncidentCustomer

    db.connect(database_url)
    first = _ticket("T-1")
    incident = Incident.create(subject="outage", created_at=NOW, last_ticket_at=NOW, customers=2,
                               primary_ticket_id=first.id, rules_fired=["customers-affected"])
    IncidentCustomer.create(incident=incident, requester="a@example.org", joined_at=NOW)
    IncidentCustomer.create(incident=incident, requester="b@example.org", joined_at=NOW + timedelta(minutes=5))
    assert incidents.incidents([incident.id, incident.id + 1]) == [(incident.id, 2, first.id, ["customers-affected"])]
    assert sorted(incidents.join_times([incident.id])) == [(incident.id, NOW), (incident.id, NOW + timedelta(minutes=5))]


@BOTH
def test_a_tier_written_with_a_schedule_only_ever_goes_up(database_url):
    db.connect(database_url)
    low, high, none = _ticket("T-1"), _ticket("T-2"), _ticket("T-3")
    Ticket.update(tier=1).where(Ticket.id == low.id).execute()
    Ticket.update(tier=3).where(Ticket.id == high.id).execute()
    with db.write_transaction():
        tickets.set_next_due({low.id: NOW, high.id: None, none.id: NOW}, {low.id: 2, high.id: 2})
        tickets.raise_tiers({none.id: 1})
        tickets.set_rules_fired({low.id: {"r": 1}})
    stored = {t.id: (t.tier, t.next_due_at, t.rules_fired) for t in Ticket.select()}
    assert stored == {low.id: (2, NOW, {"r": 1}), high.id: (3, None, None), none.id: (1, NOW, None)}


@BOTH
def test_only_an_active_ticket_outside_a_drill_is_made_due(database_url):
    db.connect(database_url)
    active, closed, drill = _ticket("T-1"), _ticket("T-2", status="closed"), _ticket("T-3")
    Ticket.update(drill=True).where(Ticket.id == drill.id).execute()
    with db.write_transaction():
        for ticket in (active, closed, drill):
            tickets.make_due(ticket.id, NOW)
    assert {t.id: t.next_due_at for t in Ticket.select()} == {active.id: NOW, closed.id: None, drill.id: None}
    assert tickets.created_at(active.id) == NOW and tickets.created_at(active.id + 100) is None


@BOTH
def test_the_quarantine_listing_gives_each_mail_s_size_in_bytes(database_url):
    """`quarantine list` reports sizes in bytes (multi-byte and non-UTF-8 bytes count as bytes) without
    reading the mails back."""
    db.connect(database_url)
    raw = "Subject: Grüße\r\n\r\n".encode() + b"\xff\x00" * 500
    Quarantine.create(reason="unparseable", received_at=NOW, folder="INBOX", uidvalidity=1, uid=7,
                      sha256="x" * 64, raw=raw)
    [listed] = queries.list_quarantine()
    assert listed["size"] == len(raw) == 1020 and listed["uid"] == 7
