"""The tick's batch lookups (and the renderer's per-mail ones) find a batch's few rows by index, never by walking what was ever
stored: a tick must cost what is due, not what the outbox, the audit log or the messages hold.

SQLite picks its plan without statistics; with `"status" IN (...)` in the per-ticket mail count it
once took the status index, which holds nearly every mail ever sent, and a tick grew with the
outbox (bench/tick_bench.py showed it once open tickets carried a history)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from escalate.outbound import notify, ratelimit
from escalate.store import db, marks, messages, outbox, rows, tickets
from escalate.store.models import Delivery, Event, Message, Outbox, Ticket

NOW = datetime(2026, 11, 4, 10, 0, tzinfo=timezone.utc)


@pytest.fixture
def stored_history(tmp_path):
    db.connect(f"sqlite:///{tmp_path / 'plans.db'}")
    at = NOW - timedelta(hours=1)
    with db.write_transaction():
        Ticket.insert_many([{"ref": f"T-{n}", "subject": "s", "normalised_subject": "s", "requester": f"c{n}@x.example",
                             "status": "open", "severity": "normal", "created_at": at, "updated_at": at,
                             "next_due_at": NOW if n < 100 else NOW + timedelta(days=1)} for n in range(150)]).execute()
        ids = [t.id for t in Ticket.select(Ticket.id)]
        Message.insert_many([{"ticket": i, "dedupe_key": f"m{i}", "sha256": f"{i}", "kind": "customer",
                              "received_at": at, "raw": b""} for i in ids]).execute()
        Event.insert_many([{"ticket": i, "at": at, "actor": "escalate", "action": "opened"} for i in ids]).execute()
        Outbox.insert_many([{"ticket": i, "kind": "acknowledgement", "message_id": f"o{i}", "mail_from": "s@x.example",
                             "recipients": ["tier1@x.example"], "subject": "s", "raw": b"", "status": "sent",
                             "next_attempt_at": at, "created_at": at} for i in ids]).execute()
        Delivery.insert_many([{"outbox": o.id, "recipient": "tier1@x.example", "mail_from": "s@x.example",
                               "status": "sent", "next_attempt_at": at, "created_at": at} for o in Outbox.select()]).execute()
    return ids[:100]  # a batch of due tickets as a busy tick has them


def plan(sql: str, params: list) -> list[str]:
    return [row[3] for row in db.database.obj.execute_sql("EXPLAIN QUERY PLAN " + sql, params).fetchall()]


def test_each_batch_lookup_searches_by_the_batch_s_tickets(stored_history):
    due = stored_history
    since = Outbox.created_at.db_value(NOW - timedelta(hours=24))
    lookups = {
        "due tickets": (f"{rows._select_all_sql(Ticket)} {tickets.DUE}", [Ticket.next_due_at.db_value(NOW), 500],
                        "USING INDEX ticket_next_due_at"),
        "mail per ticket (loop cap)": (outbox.TICKET_MAIL_TIMES.format(marks=marks(len(due)),
                                                                       statuses=marks(len(ratelimit.COUNTED))),
                                       [*due, since, *ratelimit.COUNTED], "USING INDEX outbox_ticket_id"),
        # read per mail by the renderer, as of the decision (notify.template_variables)
        "last customer message": (messages.LAST_FROM_CUSTOMER, [due[0], Message.received_at.db_value(NOW)],
                                  "USING INDEX message_ticket_id"),
        "history": (tickets.HISTORY, [due[0], Event.at.db_value(NOW), notify.HISTORY_EVENTS],
                    "USING INDEX event_ticket_id"),
    }
    for name, (sql, params, wanted) in lookups.items():
        steps = plan(sql, params)
        assert any(wanted in step for step in steps), (name, steps)
        assert not any(step.startswith("SCAN") and ("outbox" in step or "event" in step or "message" in step
                                                    or "ticket" in step.split()[1:2]) for step in steps), (name, steps)
        assert not any("outbox_status" in step for step in steps), (name, steps)


def test_the_loop_cap_still_counts_only_mail_that_went_or_will_go(stored_history):
    due = stored_history
    Outbox.update(status="cancelled").where(Outbox.ticket == due[0]).execute()
    times = ratelimit.tickets_mail_times(due, NOW - timedelta(hours=24))
    assert due[0] not in times and all(len(times[i]) == 1 for i in due[1:])
