"""Dedupe keys against rows stored before them (keyed by the Message-ID itself): a rescan after an
upgrade stores nothing twice, and still keeps apart what only shares a Message-ID."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from escalate.ingest import dedupe
from escalate.mail.parse import parse_message
from escalate.store import db, rows
from escalate.store.models import Message

from ..conftest import make_mail

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)
BOTH = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


def store_as_before(raw: bytes) -> None:
    parsed = parse_message(raw)
    with db.write_transaction():
        rows.create(Message, dedupe_key=parsed.message_id, message_id=parsed.message_id, sha256=parsed.sha256,
                    kind="customer", received_at=NOW, raw=raw)


@BOTH
def test_a_row_keyed_the_old_way_is_found_again_by_its_identity(database_url):
    db.connect(database_url)
    raw = make_mail(sender="carl@customer.example", subject="Printer", body="It jams.", message_id="old@example.net")
    store_as_before(raw)
    again = b"Received: from relay2.example\r\n" + raw  # another delivery of the same mail
    assert dedupe.dedupe_key(parse_message(again), again) == (None, False)
    other = make_mail(sender="eve@other.example", subject="Printer", body="It jams.", message_id="old@example.net")
    key, flagged = dedupe.dedupe_key(parse_message(other), other)
    assert key == dedupe.identity_key(other) and flagged


def test_the_identity_is_the_headers_an_author_wrote_not_the_transport_or_folding():
    raw = make_mail(sender="carl@customer.example", subject="Printer", body="x", message_id="m@example.net")
    assert dedupe.identity_key(b"Received: a\r\nDelivered-To: b\r\n" + raw) == dedupe.identity_key(raw)
    folded = raw.replace(b"Subject: Printer", b"Subject:\r\n Printer")
    assert dedupe.identity_key(folded) == dedupe.identity_key(raw)
    for header, changed in ((b"Subject: Printer", b"Subject: Printer!"), (b"From: carl@", b"From: carla@"),
                            (b"Date: Mon, 02 Nov 2026 09:00:00", b"Date: Mon, 02 Nov 2026 09:00:01")):
        assert dedupe.identity_key(raw.replace(header, changed)) != dedupe.identity_key(raw), header
    assert dedupe.identity_key(raw.replace(b"x\n", b"y\n")) == dedupe.identity_key(raw)  # the body is compared apart


@BOTH
def test_an_identity_already_stored_under_another_message_id_is_kept_apart_not_a_crash(database_url):
    """Headers broken enough to read one way to the parser and another to the identity (found by
    the mutation fuzz): the unique key must never fail the insert."""
    db.connect(database_url)
    raw = make_mail(sender="carl@customer.example", subject="Printer", body="It jams.", message_id="new@example.net")
    with db.write_transaction():
        rows.create(Message, dedupe_key=dedupe.identity_key(raw), message_id="read-otherwise@example.net",
                    sha256="0" * 64, kind="customer", received_at=NOW, raw=b"x")
    parsed = parse_message(raw)
    key, flagged = dedupe.dedupe_key(parsed, raw)
    assert key == f"{dedupe.identity_key(raw)}#sha256:{parsed.sha256}" and flagged
    with db.write_transaction():
        rows.create(Message, dedupe_key=key, message_id=parsed.message_id, sha256=parsed.sha256, kind="customer",
                    received_at=NOW, raw=raw)
    assert dedupe.dedupe_key(parsed, raw) == (None, False)


def test_line_ends_are_read_as_the_parser_reads_them():
    crlf = make_mail(sender="carl@customer.example", subject="Printer", body="x", message_id="m@example.net")
    crlf = crlf.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    cr_only = crlf.replace(b"\r\n", b"\r")
    assert dedupe.identity_key(cr_only) == dedupe.identity_key(crlf)
    other = cr_only.replace(b"m@example.net", b"n@example.net")
    assert dedupe.identity_key(other) != dedupe.identity_key(cr_only)
