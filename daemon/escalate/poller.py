"""The ingest stage: which folders are due, one IMAP connection kept between runs, IDLE between polls.

    poller = Poller()
    poller.run(app, now)                                   # `run --once`: every folder, then close
    poller.run(app, now, keep_waiting=lambda: running)     # the daemon: drain, IDLE, drain … ≤ a poll interval

Each folder has its own interval (ESCALATE_FOLDER_SCHEDULES, default ESCALATE_POLL_SECONDS), so
the Sent folder can be read every few minutes while INBOX is watched all the time. In the daemon
the connection stays open between runs; between drains it waits in IMAP IDLE on the first
folder where the server offers IDLE, so new mail is read within a second, and every IDLE is
renewed within 9 minutes (mailbox.py). Any IMAP error closes the connection and propagates as
MailboxUnavailable: the daemon's stage retries with capped back-off and never exits (I3, I4).

Several instances on one PostgreSQL ingest each folder from one instance at a time (folderlock.py):
a folder is polled only while this instance holds its lock; one held elsewhere is tried again
every CLAIM_RETRY_SECONDS, so it is taken over within seconds of its holder's death. Losing the
IMAP connection lets go of the folders too, so an instance that can still reach the server takes them.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Callable

from . import clock
from .attachments import AttachmentStore, root_for
from .config import Settings
from .folderlock import FolderLocks, folder_name
from .ingest import IngestOptions, IngestResult, ingest_folder
from .instance import identity
from .mailbox import IDLE_RENEW_SECONDS, Mailbox, MailboxUnavailable

log = logging.getLogger(__name__)

CLAIM_RETRY_SECONDS = 2.0  # how often a folder held by another instance is tried: the takeover time


def options_for(settings: Settings) -> IngestOptions:
    return IngestOptions(processed_action=settings.processed_action, max_message_bytes=settings.max_message_bytes,
                         attachments=AttachmentStore(root_for(settings), settings.max_attachment_bytes),
                         previous_secret=settings.previous_secret, token_ttl=settings.token_ttl)


class Poller:
    """Folder schedules, folder locks and the kept connection of one ingest thread (imapclient is
    not thread-safe)."""

    def __init__(self) -> None:
        self.mailbox: Mailbox | None = None
        self.polled_at: dict[str, float] = {}  # folder → monotonic time of its last drain
        self.locks: FolderLocks | None = None
        self._waiting_for: set[str] = set()  # folders held elsewhere, said once in the log

    def held(self) -> list[str]:
        """The folders this instance ingests now, as "user@host:port/folder" (for heartbeats and status)."""
        return self.locks.held() if self.locks is not None else []

    def run(self, app: Any, now: datetime, *, keep_waiting: Callable[[], bool] | None = None) -> IngestResult:
        """Drain the due folders; with `keep_waiting`, keep the connection and go on draining
        whenever IDLE announces mail, for about one poll interval (or until keep_waiting() is False)."""
        settings: Settings = app.settings
        result = IngestResult()
        budget = min(settings.poll_seconds, settings.stuck_seconds / 2, IDLE_RENEW_SECONDS)
        deadline = time.monotonic() + budget
        try:
            self._drain(app, now, result)
            while keep_waiting is not None and keep_waiting():
                left = deadline - time.monotonic()
                if left <= 1.0:
                    break
                held = [f for f in settings.imap.folders if folder_name(settings.imap, f) in self.held()]
                # folders held elsewhere are tried again soon: their holder may have died
                wait = min(left, CLAIM_RETRY_SECONDS) if len(held) < len(settings.imap.folders) else left
                mailbox = self._connection(settings) if settings.idle and held else None
                if mailbox is not None and mailbox.supports_idle:
                    mailbox.select(held[0], writable=settings.processed_action != "leave")
                    if mailbox.wait_for_mail(wait, lambda: not keep_waiting()):
                        self.polled_at.pop(held[0], None)  # new mail: drain it now, whatever its schedule
                elif wait < left:
                    _sleep(wait, keep_waiting)
                else:
                    break
                self._drain(app, clock.now(), result)
        except MailboxUnavailable:
            self.close()
            raise
        finally:
            if keep_waiting is None:
                self.close()
        return result

    def _drain(self, app: Any, now: datetime, result: IngestResult) -> None:
        settings: Settings = app.settings
        if self.locks is None:
            self.locks = FolderLocks(settings.db_url, identity=identity())
        options = options_for(settings)
        intervals = dict(settings.folder_seconds)
        for folder in settings.imap.folders:
            name = folder_name(settings.imap, folder)
            if not self._claim(name):
                self.polled_at.pop(folder, None)  # whenever it becomes ours, drain it at once
                continue
            last = self.polled_at.get(folder)
            interval = intervals.get(folder, settings.poll_seconds)
            if last is not None and time.monotonic() - last < interval - 0.5:
                continue
            ingest_folder(self._connection(settings), folder, app.ruleset, app.renderer, app.secret, now, result,
                          options)
            self.polled_at[folder] = time.monotonic()

    def _claim(self, name: str) -> bool:
        if self.locks.claim(name):
            self._waiting_for.discard(name)
            return True
        if name not in self._waiting_for:
            log.info("%s is ingested by another instance; trying to take it over every %.0f s", name,
                     CLAIM_RETRY_SECONDS)
            if self.mailbox is None and not self.polled_at:  # e.g. `run --once` beside running daemons
                log.warning("skipping %s: another instance is ingesting it", name)
            self._waiting_for.add(name)
        return False

    def _connection(self, settings: Settings) -> Mailbox:
        if self.mailbox is None or not self.mailbox.connected:
            mailbox = Mailbox(settings.imap, read_timeout=settings.imap_timeout)
            mailbox.connect()
            self.mailbox = mailbox
        return self.mailbox

    def close(self) -> None:
        """Close the IMAP connection and let go of the folders."""
        if self.mailbox is not None:
            self.mailbox.close()
            self.mailbox = None
        if self.locks is not None:
            self.locks.release_all()


def _sleep(seconds: float, keep_waiting: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while keep_waiting() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))
