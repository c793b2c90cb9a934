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
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Callable

from . import clock
from .attachments import AttachmentStore, root_for
from .config import Settings
from .ingest import IngestOptions, IngestResult, ingest_folder
from .mailbox import IDLE_RENEW_SECONDS, Mailbox, MailboxUnavailable


def options_for(settings: Settings) -> IngestOptions:
    return IngestOptions(processed_action=settings.processed_action, max_message_bytes=settings.max_message_bytes,
                         attachments=AttachmentStore(root_for(settings), settings.max_attachment_bytes),
                         previous_secret=settings.previous_secret, token_ttl=settings.token_ttl)


class Poller:
    """Folder schedules and the kept connection of one ingest thread (imapclient is not thread-safe)."""

    def __init__(self) -> None:
        self.mailbox: Mailbox | None = None
        self.polled_at: dict[str, float] = {}  # folder → monotonic time of its last drain

    def run(self, app: Any, now: datetime, *, keep_waiting: Callable[[], bool] | None = None) -> IngestResult:
        """Drain the due folders; with `keep_waiting`, keep the connection and go on draining
        whenever IDLE announces mail, for about one poll interval (or until keep_waiting() is False)."""
        settings: Settings = app.settings
        result = IngestResult()
        budget = min(settings.poll_seconds, settings.stuck_seconds / 2, IDLE_RENEW_SECONDS)
        deadline = time.monotonic() + budget
        try:
            self._drain(app, now, result)
            while keep_waiting is not None and settings.idle and keep_waiting():
                left = deadline - time.monotonic()
                mailbox = self._connection(settings)
                if left <= 1.0 or not mailbox.supports_idle:
                    break
                folder = settings.imap.folders[0]
                mailbox.select(folder, writable=settings.processed_action != "leave")
                if mailbox.wait_for_mail(left, lambda: not keep_waiting()):
                    self.polled_at.pop(folder, None)  # new mail: drain it now, whatever its schedule
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
        mailbox = self._connection(settings)
        options = options_for(settings)
        intervals = dict(settings.folder_seconds)
        for folder in settings.imap.folders:
            last = self.polled_at.get(folder)
            interval = intervals.get(folder, settings.poll_seconds)
            if last is not None and time.monotonic() - last < interval - 0.5:
                continue
            ingest_folder(mailbox, folder, app.ruleset, app.renderer, app.secret, now, result, options)
            self.polled_at[folder] = time.monotonic()

    def _connection(self, settings: Settings) -> Mailbox:
        if self.mailbox is None or not self.mailbox.connected:
            mailbox = Mailbox(settings.imap, read_timeout=settings.imap_timeout)
            mailbox.connect()
            self.mailbox = mailbox
        return self.mailbox

    def close(self) -> None:
        if self.mailbox is not None:
            self.mailbox.close()
            self.mailbox = None
