"""Attachment contents on disk, under the state directory, with names the sender cannot choose.

A sender's filename (`../../etc/passwd`, `CON`, NUL, 10 KB of RFC 2231 encoded traversal) is
only ever data in the database. Contents go into pack files that escalate names itself,
`<root>/packs/<random>.pack`: one per fetched batch, the attachments one after another, each row
saying where its bytes start (`stored_offset`) and how many there are (`size`). One file per batch,
not one per attachment: creating a file costs this ext4 0.3–1.5 ms of kernel time (the inode
allocator's scan past recently deleted inodes), more than parsing the mail that carries it.

Identical contents are kept once: a row records their SHA-256, and contents already stored (in a
committed pack, or earlier in the batch's own) are pointed at instead of written again.

Crash safety (a kill at any point loses nothing): a pack is written as `<name>.pack.tmp`, and sealed — fsync, renamed to
`<name>.pack`, the directory fsynced — before the transaction that stores its rows commits. A
crash before that commit leaves a `.tmp` file no row points to, never a row pointing at missing or
half-written contents; such a file is deleted once it is an hour old, by the first batch after that
which writes contents (`remove_abandoned_packs`, looked for at most hourly). Contents larger than
the limit are not kept; their name, type and size still are. Rows stored before packs existed name a file of their own
(`ab/<sha256>.bin`, `stored_offset` None) and still read.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from escalate.config import Settings
from escalate.mail.parse import Attachment
from escalate.store import messages, private
from escalate.store.db import sqlite_path
from escalate.store.models import Attachment as AttachmentRow
from escalate.store.models import Message
from escalate.store.rows import insert_many

PACKS = "packs"

log = logging.getLogger(__name__)


def root_for(settings: Settings) -> Path:
    """Where attachment contents live: ESCALATE_ATTACHMENTS_DIR, else beside the SQLite file
    (systemd's StateDirectory), else STATE_DIRECTORY or the working directory."""
    if settings.attachments_dir is not None:
        return settings.attachments_dir
    path = sqlite_path(settings.db_url)
    if path and path != ":memory:":
        return Path(path).resolve().parent / "attachments"
    state = os.environ.get("STATE_DIRECTORY")
    return (Path(state.split(":")[0]) if state else Path.cwd()) / "attachments"


def keep_private(settings: Settings) -> None:
    """At start: attachments/ and its packs 0700 if an older version (or a wide umask) left them
    readable by others; they are created so anyway when the first contents arrive."""
    root = root_for(settings)
    for directory in (root, root / PACKS):
        if directory.is_dir():
            private.make_directory(directory, ours=True)


class AttachmentWriteError(OSError):
    """Attachment contents could not be written (disk full, permissions): the environment's
    fault, not the mail's, so the batch fails and is fetched again later (like the database
    being full) instead of its mail going to quarantine."""


class _Pack:
    """The pack file being written for one batch: appended to, then sealed or discarded."""

    def __init__(self, directory: str):
        name = uuid.uuid4().hex
        self.relative = f"{PACKS}/{name}.pack"
        self.final = os.path.join(directory, f"{name}.pack")
        self.temporary = self.final + ".tmp"
        self.directory = directory
        # a fresh name (never someone else's file), readable by escalate alone
        self.handle = os.fdopen(private.open_file(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "wb",
                                buffering=0)
        self.size = 0

    def append(self, data: bytes) -> int:
        offset = self.size
        view = memoryview(data)
        while view:  # an unbuffered write may take less than all
            view = view[self.handle.write(view):]
        self.size += len(data)
        return offset

    def seal(self) -> None:
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.rename(self.temporary, self.final)
        directory = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(directory)  # the rename itself survives a power cut
        finally:
            os.close(directory)

    def discard(self) -> None:
        self.handle.close()
        try:
            os.unlink(self.temporary)
        except OSError:
            pass  # a leftover .tmp is garbage no row points to


# A `.tmp` pack older than this was left by a process that died before sealing it. Younger ones may
# be a batch another instance sharing the directory is writing now (a batch takes seconds).
ABANDONED_AFTER_SECONDS = 3600


def remove_abandoned_packs(directory: str) -> list[str]:
    """Delete the unsealed packs (`.pack.tmp`) a crash left behind, once they are old enough that
    no live batch can be writing them; no row ever points at one. The names deleted."""
    now = time.time()
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.endswith(".pack.tmp"):
            continue
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > ABANDONED_AFTER_SECONDS:
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            continue  # gone meanwhile, or not ours to delete: it is only space
    if removed:
        log.info("removed %d unsealed attachment pack(s) left by an interrupted batch in %s", len(removed), directory)
    return removed


class AttachmentStore:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes
        self._pack: _Pack | None = None   # the batch's pack, once it has contents
        self._batch_depth = 0
        self._packs_ready = False          # the packs directory is known to exist
        self._swept_at = float("-inf")     # when abandoned packs were last looked for

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Share one pack among the mails stored inside; it is sealed when the block ends, so end
        the block before the commit (inside the write transaction). On an exception it is
        discarded: the transaction that would have pointed at it is rolled back too."""
        self._batch_depth += 1
        try:
            yield
        except BaseException:
            if self._batch_depth == 1:
                self._discard()
            raise
        else:
            if self._batch_depth == 1:
                self._seal()
        finally:
            self._batch_depth -= 1

    def save_all(self, message: Message, attachments: tuple[Attachment, ...]) -> None:
        """A row per attachment; contents within the limit written to the batch's pack (to a
        pack of their own, sealed before returning, outside `batch()`). Call in the transaction
        that stores `message`."""
        with self.batch():
            rows = []
            for attachment in attachments:
                stored_path = stored_offset = digest = None
                if attachment.data is not None and 0 < len(attachment.data) <= self.max_bytes:
                    digest = hashlib.sha256(attachment.data).hexdigest()
                    stored_path, stored_offset = self._write(attachment.data, digest)
                rows.append({"message": message.id, "filename": (attachment.filename or None) and attachment.filename[:255],
                             "content_type": attachment.content_type[:200], "size": attachment.size,
                             "stored_path": stored_path, "stored_offset": stored_offset, "sha256": digest})
            if rows:
                insert_many(AttachmentRow, rows)

    def _write(self, data: bytes, digest: str) -> tuple[str, int | None]:
        """Where `data` is stored: contents already kept (committed, or earlier in this
        transaction: rows of a mail whose savepoint was undone are gone, but not the bytes they
        pointed at, which stay in the pack), else appended to the batch's pack."""
        found = messages.stored_contents(digest)
        if found is not None and (found[1] is not None or os.path.exists(os.path.join(self.root, found[0]))):
            return found[0], found[1]
        try:
            if self._pack is None:
                self._pack = _Pack(self._packs_directory())
            return self._pack.relative, self._pack.append(data)
        except OSError as error:
            raise AttachmentWriteError(f"attachment contents could not be written under {self.root}: {error}") from error

    def _packs_directory(self) -> str:
        directory = os.path.join(self.root, PACKS)
        if not self._packs_ready:
            private.make_directory(self.root, ours=True)  # 0700: every customer's attachments are in it
            private.make_directory(directory, ours=True)
            self._packs_ready = True
        if time.monotonic() - self._swept_at > ABANDONED_AFTER_SECONDS:  # first use, then hourly
            remove_abandoned_packs(directory)
            self._swept_at = time.monotonic()
        return directory

    def _seal(self) -> None:
        pack, self._pack = self._pack, None
        if pack is None:
            return
        try:
            pack.seal()
        except OSError as error:
            pack.discard()
            raise AttachmentWriteError(f"attachment contents could not be written under {self.root}: {error}") from error

    def _discard(self) -> None:
        pack, self._pack = self._pack, None
        if pack is not None:
            pack.discard()

    def read(self, row: AttachmentRow) -> bytes:
        """The stored contents of an attachment row (ValueError when none were kept)."""
        if row.stored_path is None:
            raise ValueError(f"the contents of attachment {row.id} were not kept")
        with open(self.path(row.stored_path), "rb") as handle:
            if row.stored_offset is None:  # a file of its own (stored before packs)
                return handle.read()
            handle.seek(row.stored_offset)
            data = handle.read(row.size)
        if len(data) != row.size:
            raise ValueError(f"attachment {row.id}: {row.stored_path} ends before its {row.size} bytes")
        return data

    def path(self, relative: str) -> Path:
        """The file of a stored attachment; refuses anything that would leave the root."""
        resolved = (self.root / relative).resolve()
        if self.root not in resolved.parents:
            raise ValueError(f"attachment path {relative!r} is outside {self.root}")
        return resolved
