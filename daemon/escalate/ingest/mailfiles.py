"""History on disk for `escalate import`: the raw messages of an mbox file or a Maildir.

The standard library reads both formats; this module only decides which one a path is and hands
out raw bytes one message at a time, so importing a multi-gigabyte mbox does not load it whole.
"""

from __future__ import annotations

import mailbox as stdlib_mailbox
from pathlib import Path
from escalate.errors import InputError


class NotAMailStore(InputError, ValueError):
    """The path is neither an mbox file nor a Maildir."""


def open_store(path: Path) -> stdlib_mailbox.Mailbox:
    path = Path(path)
    if path.is_dir():
        if all((path / sub).is_dir() for sub in ("cur", "new")):
            return stdlib_mailbox.Maildir(str(path), factory=None, create=False)
        raise NotAMailStore(f"{path} is a directory but not a Maildir (it needs cur/ and new/)")
    if not path.is_file():
        raise NotAMailStore(f"{path} does not exist")
    with open(path, "rb") as handle:
        start = handle.read(5)
    if start and start != b"From ":
        raise NotAMailStore(f"{path} is not an mbox file (it does not start with a 'From ' line)")
    return stdlib_mailbox.mbox(str(path), factory=None, create=False)


def count(store: stdlib_mailbox.Mailbox) -> int:
    return len(store.keys())


def ordered_keys(store: stdlib_mailbox.Mailbox) -> list:
    """The messages' keys in the store's order (mbox: file order; Maildir: sorted by name)."""
    keys = store.keys()
    return sorted(keys) if isinstance(store, stdlib_mailbox.Maildir) else list(keys)


def read(store: stdlib_mailbox.Mailbox, key) -> bytes | None:
    """One message's bytes; None when it went away meanwhile (a Maildir file removed while we read)."""
    try:
        return store.get_bytes(key)
    except (KeyError, FileNotFoundError):
        return None
