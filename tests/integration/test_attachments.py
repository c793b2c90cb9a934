"""attachments.py: a batch's contents in one pack file, sealed before the commit; identical
contents kept once; nothing a crash or a failed batch leaves behind is pointed at by a row. On
SQLite and PostgreSQL (the digest lookup is SQL)."""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from escalate.ingest.attachments import AttachmentStore, AttachmentWriteError
from escalate.mail.parse import Attachment
from escalate.store import db, rows
from escalate.store.models import Attachment as AttachmentRow
from escalate.store.models import Message

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=timezone.utc)


def _message(key: str) -> Message:
    return rows.create(Message, dedupe_key=key, message_id=key, sha256="00" * 32, kind="customer",
                       received_at=NOW, raw=b"raw")


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _contents(store: AttachmentStore) -> dict[str, bytes]:
    return {row.filename: store.read(row) for row in AttachmentRow.select().order_by(AttachmentRow.id)
            if row.stored_path is not None}


def test_a_batch_shares_one_sealed_pack_and_identical_contents_are_kept_once(database_url, tmp_path):
    db.connect(database_url)
    store = AttachmentStore(tmp_path / "attachments", max_bytes=1_000)
    logo = b"\x89PNG logo" * 10
    with db.write_transaction(), store.batch():
        store.save_all(_message("a@x"), (Attachment("log.txt", "text/plain", 5, b"hello"),
                                         Attachment("logo.png", "image/png", len(logo), logo)))
        store.save_all(_message("b@x"), (Attachment("logo2.png", "image/png", len(logo), logo),
                                         Attachment("big.bin", "application/octet-stream", 2_000, b"x" * 2_000),
                                         Attachment("empty.txt", "text/plain", 0, b"")))
    [pack] = _files(tmp_path / "attachments")
    assert pack.suffix == ".pack" and pack.stat().st_size == 5 + len(logo)  # the logo once, no oversized contents
    assert _contents(store) == {"log.txt": b"hello", "logo.png": logo, "logo2.png": logo}
    assert [(r.filename, r.size) for r in AttachmentRow.select().where(AttachmentRow.stored_path.is_null())] == \
           [("big.bin", 2_000), ("empty.txt", 0)]  # over the limit, or nothing: name, type and size only
    with db.write_transaction(), store.batch():  # a later batch points at the committed copy
        store.save_all(_message("c@x"), (Attachment("logo3.png", "image/png", len(logo), logo),))
    assert _files(tmp_path / "attachments") == [pack] and store.read(AttachmentRow.get(filename="logo3.png")) == logo


def test_a_failed_batch_leaves_no_pack_and_no_row(database_url, tmp_path):
    db.connect(database_url)
    store = AttachmentStore(tmp_path / "attachments", max_bytes=1_000)
    with pytest.raises(RuntimeError), db.write_transaction(), store.batch():
        store.save_all(_message("a@x"), (Attachment("log.txt", "text/plain", 5, b"hello"),))
        raise RuntimeError("the database went away before the commit")
    assert _files(tmp_path / "attachments") == [] and AttachmentRow.select().count() == 0
    with db.write_transaction(), store.batch():  # the same contents, stored for real this time
        store.save_all(_message("a@x"), (Attachment("log.txt", "text/plain", 5, b"hello"),))
    assert _contents(store) == {"log.txt": b"hello"}


def test_contents_of_a_mail_undone_by_its_savepoint_still_serve_a_later_mail(database_url, tmp_path):
    db.connect(database_url)
    store = AttachmentStore(tmp_path / "attachments", max_bytes=1_000)
    with db.write_transaction(), store.batch():
        with pytest.raises(RuntimeError), db.database.obj.atomic():  # the bad mail's savepoint, undone alone
            store.save_all(_message("bad@x"), (Attachment("a.txt", "text/plain", 5, b"hello"),))
            raise RuntimeError("this mail fails after its attachments")
        store.save_all(_message("good@x"), (Attachment("b.txt", "text/plain", 5, b"hello"),))
    assert _contents(store) == {"b.txt": b"hello"}


def test_outside_a_batch_each_save_is_sealed_before_it_returns(database_url, tmp_path):
    db.connect(database_url)
    store = AttachmentStore(tmp_path / "attachments", max_bytes=1_000)
    with db.write_transaction():
        store.save_all(_message("a@x"), (Attachment("a.txt", "text/plain", 3, b"one"),))
        [pack] = _files(tmp_path / "attachments")  # already final, before the commit
        assert pack.suffix == ".pack"
    assert _contents(store) == {"a.txt": b"one"}


def test_contents_stored_as_files_of_their_own_before_packs_still_read_and_are_reused(database_url, tmp_path):
    """Rows from before migration 7 name `ab/<sha256>.bin`; the migration recorded their digest."""
    import hashlib

    db.connect(database_url)
    root = tmp_path / "attachments"
    digest = hashlib.sha256(b"old contents").hexdigest()
    (root / digest[:2]).mkdir(parents=True)
    (root / digest[:2] / f"{digest}.bin").write_bytes(b"old contents")
    store = AttachmentStore(root, max_bytes=1_000)
    with db.write_transaction():
        rows.insert_many(AttachmentRow, [{"message": _message("old@x").id, "filename": "old.txt",
                                          "content_type": "text/plain", "size": 12,
                                          "stored_path": f"{digest[:2]}/{digest}.bin"}])
        db.database.execute_sql(  # what migration 7 does to such a row
            __import__("escalate.store.migrations", fromlist=["_LEGACY_ATTACHMENT_DIGESTS"])._LEGACY_ATTACHMENT_DIGESTS)
    with db.write_transaction(), store.batch():
        store.save_all(_message("new@x"), (Attachment("new.txt", "text/plain", 12, b"old contents"),))
    assert _contents(store) == {"old.txt": b"old contents", "new.txt": b"old contents"}
    assert not (root / "packs").exists() or list((root / "packs").iterdir()) == []


def test_an_unwritable_directory_fails_the_batch_as_a_storage_error(database_url, tmp_path):
    db.connect(database_url)
    blocked = tmp_path / "a-file"
    blocked.write_text("where the directory should be")
    store = AttachmentStore(blocked / "attachments", max_bytes=1_000)
    with pytest.raises(AttachmentWriteError), db.write_transaction(), store.batch():
        store.save_all(_message("a@x"), (Attachment("a.txt", "text/plain", 3, b"one"),))
    assert AttachmentRow.select().count() == 0


def test_unsealed_packs_a_crash_left_are_removed_once_no_batch_can_be_writing_them(database_url, tmp_path):
    """A `.pack.tmp` is what a process killed before its commit leaves (no row points to it). An
    old one is deleted when contents are next written; a young one may be another instance's
    batch in progress, and sealed packs are never touched."""
    db.connect(database_url)
    packs = tmp_path / "attachments" / "packs"
    packs.mkdir(parents=True)
    abandoned, in_progress, sealed = packs / "dead.pack.tmp", packs / "live.pack.tmp", packs / "old.pack"
    for path in (abandoned, in_progress, sealed):
        path.write_bytes(b"bytes")
    two_hours_ago = time.time() - 7200
    for path in (abandoned, sealed):
        os.utime(path, (two_hours_ago, two_hours_ago))
    store = AttachmentStore(tmp_path / "attachments", max_bytes=1_000)
    with db.write_transaction(), store.batch():
        store.save_all(_message("a@x"), (Attachment("log.txt", "text/plain", 5, b"hello"),))
    assert not abandoned.exists() and in_progress.exists() and sealed.exists()
    assert _contents(store) == {"log.txt": b"hello"}
