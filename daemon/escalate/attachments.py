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
from pathlib import Path

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


class AttachmentStore:
    def __init__(self, root: Path, max_bytes: int):
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes
        self._directories: set[str] = set()  # fan-out directories known to exist (mkdir costs a syscall)

    def save_all(self, message: Message, attachments: tuple[Attachment, ...]) -> None:
        """A row per attachment; contents within the limit written to disk. Call in the
        transaction that stores `message`."""
        rows = []
        for attachment in attachments:
            stored = None
            if attachment.data is not None and 0 < len(attachment.data) <= self.max_bytes:
                stored = self.write(attachment.data)
            rows.append({"message": message.id, "filename": (attachment.filename or None) and attachment.filename[:255],
                         "content_type": attachment.content_type[:200], "size": attachment.size,
                         "stored_path": stored})
        if rows:
            insert_many(AttachmentRow, rows)

    def write(self, data: bytes) -> str:
        """Store `data`; returns its path relative to the root. Raises AttachmentWriteError."""
        digest = hashlib.sha256(data).hexdigest()
        relative = f"{digest[:2]}/{digest}.bin"
        target = os.path.join(self.root, relative)
        if os.path.exists(target):
            return relative
        try:
            self._create(target, data)
        except OSError as error:
            raise AttachmentWriteError(f"attachment contents could not be written under {self.root}: {error}") from error
        return relative

    def _create(self, target: str, data: bytes) -> None:
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
