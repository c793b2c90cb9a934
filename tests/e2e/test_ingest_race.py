"""Two writers storing the same mail at once (two ingesters on one folder; a CLI import beside
the daemon): the database's unique keys keep one copy, and the loser treats the conflict as the
duplicate it is — it must not quarantine a good mail as an "ingest failure" or stop polling.
Both databases: PostgreSQL is where instances really race."""

from __future__ import annotations

from datetime import datetime

import pytest
from escalate.clock import parse_time
from escalate.config import load_settings
from escalate.ingest import dedupe
from escalate.ingest import pipeline as ingest
from escalate.ingest.pipeline import Source
from escalate.ingest.poller import options_for
from escalate.ops.service import open_app
from escalate.store.db import write_transaction
from escalate.store.models import FolderState, Message, Quarantine, Ticket

from escalate.store.batch import Batch

from ..conftest import make_mail
from .ingest_support import NOW

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def test_a_mail_another_writer_stored_meanwhile_is_a_duplicate_not_a_quarantined_failure(env, cli, monkeypatch):
    app = open_app(load_settings(env))
    options, now = options_for(app.settings), parse_time(NOW)
    raw = make_mail(sender="ann@customer.example", subject="Printer on fire", body="Help.",
                    message_id="race-1@customer.example")

    def store(uid: int) -> str:
        with write_transaction():
            batch = Batch()
            outcome = ingest._store_guarded(raw, Source("INBOX", 1, uid), app.ruleset, app.renderer, app.secret,
                                            now, [], options, batch)
            batch.flush()
            return outcome

    assert store(1) == "ticket"  # the other instance wins the race
    # ours checked for the mail before theirs committed: the first dedupe check says "new"
    stale = iter([(dedupe.identity_key(raw), False)])
    real = dedupe.dedupe_key
    monkeypatch.setattr(dedupe, "dedupe_key", lambda parsed, data: next(stale, None) or real(parsed, data))
    assert store(2) == "duplicate"
    assert Message.select().count() == 1 and Ticket.select().count() == 1
    assert Quarantine.select().count() == 0


def test_two_first_polls_of_a_folder_share_one_checkpoint(env, cli, monkeypatch):
    open_app(load_settings(env))
    now = datetime(2026, 11, 23, 9, 0)
    first = ingest._folder_state("support@imap:143", "INBOX", 7, now)
    # the second poll looked before the first one's row was committed
    monkeypatch.setattr(FolderState, "get_or_none", classmethod(lambda cls, *where: None))
    second = ingest._folder_state("support@imap:143", "INBOX", 7, now)
    assert second.id == first.id
    assert FolderState.select().count() == 1
