"""Files and directories only escalate's own user can read: every mail, attachment and live reply
token is in them. Modes are set explicitly (0700, 0600) rather than left to the umask, which under
a login shell's usual 022 would make them readable by every local user.

Directories escalate names itself (the database's, attachments/, packs/) are made private when it
creates them; one that already exists is left as it is unless it is escalate's own by name
(attachments/, packs/), since it may be shared (the working directory, /etc/escalate). Files are
escalate's own, so an existing one made by an older version is tightened too.
"""

from __future__ import annotations

import os
from pathlib import Path

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def make_directory(path: str | os.PathLike, *, ours: bool = False) -> None:
    """Create `path` (and missing parents) with mode 0700. An existing directory is tightened
    only when `ours` (its name and contents are escalate's alone)."""
    path = Path(path)
    missing = []
    for candidate in (path, *path.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    for created in (missing if not ours else [*missing, path]):
        try:
            os.chmod(created, DIRECTORY_MODE)  # mkdir's mode goes through the umask
        except FileNotFoundError:
            pass  # removed meanwhile by someone else: nothing of ours is in it


def tighten(path: str | os.PathLike) -> None:
    """Make an existing file of escalate's 0600 (one made before this version, under any umask)."""
    try:
        if os.stat(path).st_mode & 0o777 != FILE_MODE:
            os.chmod(path, FILE_MODE)
    except (FileNotFoundError, PermissionError):
        pass  # not there, or another user's: theirs to set


def open_file(path: str | os.PathLike, flags: int) -> int:
    """os.open with mode 0600 whatever the umask; for files escalate creates."""
    descriptor = os.open(path, flags, FILE_MODE)
    try:
        if os.fstat(descriptor).st_mode & 0o777 != FILE_MODE:
            os.fchmod(descriptor, FILE_MODE)
    except PermissionError:
        pass  # an existing file of another user's: theirs to set
    return descriptor
