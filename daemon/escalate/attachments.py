"""Attachment contents on disk, under the state directory, with names the sender cannot choose.

A sender's filename (`../../etc/passwd`, `CON`, NUL, 10 KB of RFC 2231 encoded traversal: S12) is
only ever data in the database. The file on disk is named after the SHA-256 of its contents —
`<root>/ab/abcdef….bin` — so nothing a mail says can steer a write outside `root`, identical
attachments are stored once, and a write repeated after a crash is harmless. Files are written
to a temporary name and renamed, so a reader never sees half a file. Contents larger than the
limit are not kept; their name, type and size still are.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from contextlib import contextmanager
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Iterator

from .config import Settings
from .db import sqlite_path
from .models import Attachment as AttachmentRow
from .models import Message
from .parse import Attachment
from .rows import insert_many


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


class AttachmentWriteError(OSError):
    """Attachment contents could not be written (disk full, permissions): the environment's
    fault, not the mail's, so the batch fails and is fetched again later (like the database
    being full, I12) instead of its mail going to quarantine."""


# Creating a file costs ~0.5 ms of kernel time on the reference machine, as much as parsing the
# mail. A background thread creates them while the ingest thread goes on with the next mail
# (the kernel work runs on the other core); `flush` waits before the commit that names them.
_WRITER: ThreadPoolExecutor | None = None
_WRITER_LOCK = threading.Lock()
MAX_PENDING_BYTES = 64 * 1024 * 1024  # contents held in memory waiting to be written


def _writer() -> ThreadPoolExecutor:
    global _WRITER
    with _WRITER_LOCK:
        if _WRITER is None:
            _WRITER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="escalate-attachments")
        return _WRITER


class AttachmentStore:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes
        self._directories: set[str] = set()  # fan-out directories known to exist
        self._background = False
        self._pending: list[Future] = []
        self._pending_bytes = 0

    def save_all(self, message: Message, attachments: tuple[Attachment, ...]) -> None:
        """A row per attachment; contents within the limit written to disk (in the background
        inside `writing_in_background`). Call in the transaction that stores `message`."""
        rows = []
        for attachment in attachments:
            stored = None
            if attachment.data is not None and 0 < len(attachment.data) <= self.max_bytes:
                stored = self._write_later(attachment.data) if self._background else self.write(attachment.data)
            rows.append({"message": message.id, "filename": (attachment.filename or None) and attachment.filename[:255],
                         "content_type": attachment.content_type[:200], "size": attachment.size,
                         "stored_path": stored})
        if rows:
            insert_many(AttachmentRow, rows)

    @contextmanager
    def writing_in_background(self) -> Iterator[None]:
        """Inside, save_all hands contents to the writer thread; leaving waits until all are on
        disk (use it inside the transaction, so they are before it commits) and raises
        AttachmentWriteError if one failed. On an error inside, the writes are forgotten: a
        file no row names is harmless."""
        self._background = True
        try:
            yield
        except BaseException:
            self._pending, self._pending_bytes = [], 0
            raise
        finally:
            self._background = False
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        failure = next((error for error in (future.exception() for future in pending) if error is not None), None)
        if failure is not None:
            raise AttachmentWriteError(f"attachment contents could not be written under {self.root}: {failure}") from failure

    def _write_later(self, data: bytes) -> str:
        relative = self._relative(data)
        if self._pending_bytes > MAX_PENDING_BYTES:  # bound memory: let the writer catch up
            wait(self._pending)
            self._pending_bytes = 0
        self._pending.append(_writer().submit(self._write, relative, data))
        self._pending_bytes += len(data)
        return relative

    def write(self, data: bytes) -> str:
        """Store `data` now; returns its path relative to the root."""
        relative = self._relative(data)
        self._write(relative, data)
        return relative

    @staticmethod
    def _relative(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        return f"{digest[:2]}/{digest}.bin"

    def _write(self, relative: str, data: bytes) -> None:
        target = os.path.join(self.root, relative)
        if os.path.exists(target):
            return
        directory = os.path.dirname(target)
        if directory not in self._directories:
            os.makedirs(directory, exist_ok=True)
            self._directories.add(directory)
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(data)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def path(self, relative: str) -> Path:
        """The file of a stored attachment; refuses anything that would leave the root."""
        resolved = (self.root / relative).resolve()
        if self.root not in resolved.parents:
            raise ValueError(f"attachment path {relative!r} is outside {self.root}")
        return resolved
