"""The ingest stage: which folders are due, IMAP connections kept between runs, IDLE between polls.

    poller = Poller()
    poller.run(app, now)                                   # `run --once`: every folder, then close
    poller.run(app, now, keep_waiting=lambda: running)     # the daemon: drain, IDLE, drain … ≤ a poll interval

Each folder has its own interval (ESCALATE_FOLDER_SCHEDULES, default ESCALATE_POLL_SECONDS), so
the Sent folder can be read every few minutes while INBOX is watched all the time. In the daemon
the connection stays open between runs; between drains it waits in IMAP IDLE on the first
folder where the server offers IDLE, so new mail is read within a second, and every IDLE is
renewed within 9 minutes (mailbox.py). Any IMAP error closes the connection and propagates as
MailboxUnavailable: the daemon's stage retries with capped back-off and never exits.

Several instances on one PostgreSQL ingest each folder from one instance at a time (folderlock.py):
a folder is polled only while this instance holds its lock; one held elsewhere is tried again
every CLAIM_RETRY_SECONDS, so it is taken over within seconds of its holder's death. Losing the
IMAP connection lets go of the folders too, so an instance that can still reach the server takes them.

Several IMAP accounts (ESCALATE_IMAP_URL with whitespace-separated URLs) each get a connection;
their folders are polled on the same schedules, and one account being down does not stop the
others: it is retried with its own capped back-off (the stage fails only when all are down).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any, Callable

from escalate import clock
from escalate.config import ServerUrl, Settings
from escalate.ingest.attachments import AttachmentStore, root_for
from escalate.ingest.folderlock import FolderLocks, account_name, folder_name
from escalate.ingest.mailbox import IDLE_RENEW_SECONDS, Mailbox, MailboxUnavailable
from escalate.ingest.pipeline import IngestOptions, IngestResult, ingest_folder
from escalate.ops import logs
from escalate.ops.instance import identity
from escalate.store.models import FolderState

log = logging.getLogger(__name__)

CLAIM_RETRY_SECONDS = 2.0  # how often a folder held by another instance is tried: the takeover time
MAX_ACCOUNT_BACKOFF_SECONDS = 300.0


def options_for(settings: Settings) -> IngestOptions:
    return IngestOptions(processed_action=settings.processed_action, max_message_bytes=settings.max_message_bytes,
                         attachments=AttachmentStore(root_for(settings), settings.max_attachment_bytes),
                         previous_secret=settings.previous_secret, token_ttl=settings.token_ttl)


class Poller:
    """Folder schedules, folder locks and the kept connections (one per IMAP account) of one ingest
    thread (imapclient is not thread-safe)."""

    def __init__(self) -> None:
        self.mailboxes: dict[str, Mailbox] = {}  # account name → its open connection
        self.polled_at: dict[str, float] = {}  # folder name → monotonic time of its last drain
        self.locks: FolderLocks | None = None
        self.account_retry_at: dict[str, tuple[float, int]] = {}  # a failing account of several: (when, failures)
        self._waiting_for: set[str] = set()  # folders held elsewhere, said once in the log
        self._adopted = False

    def held(self) -> list[str]:
        """The folders this instance ingests now, as "user@host:port/folder" (for heartbeats and status)."""
        return self.locks.held() if self.locks is not None else []

    def run(self, app: Any, now: datetime, *, keep_waiting: Callable[[], bool] | None = None) -> IngestResult:
        """Drain the due folders; with `keep_waiting`, keep the connections and go on draining
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
                folders = [(account, folder) for account in settings.mailboxes for folder in account.folders]
                held = [(a, f) for a, f in folders if folder_name(a, f) in self.held()]
                # folders held elsewhere are tried again soon: their holder may have died
                wait = min(left, CLAIM_RETRY_SECONDS) if len(held) < len(folders) else left
                mailbox = self._connection(settings, held[0][0]) if settings.idle and held else None
                if mailbox is not None and mailbox.supports_idle:
                    account, folder = held[0]
                    mailbox.select(folder, writable=settings.processed_action != "leave")
                    if mailbox.wait_for_mail(wait, lambda: not keep_waiting()):
                        # new mail: drain it now, whatever its schedule
                        self.polled_at.pop(folder_name(account, folder), None)
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
        if not self._adopted:
            adopt_folder_states(settings)
            self._adopted = True
        options = options_for(settings)
        intervals = dict(settings.folder_seconds)
        accounts = settings.mailboxes
        failures: list[MailboxUnavailable] = []
        for account in accounts:
            try:
                self._drain_account(app, account, now, result, options, intervals)
            except MailboxUnavailable as error:
                if len(accounts) == 1:
                    raise  # the stage backs off and retries, as it always has
                failures.append(error)
                self._account_failed(account, error)
        if failures and len(failures) == len(accounts):
            raise failures[0]

    def _drain_account(self, app: Any, account: ServerUrl, now: datetime, result: IngestResult,
                       options: Any, intervals: dict[str, float]) -> None:
        settings: Settings = app.settings
        retry_at, _failures = self.account_retry_at.get(account_name(account), (0.0, 0))
        if time.monotonic() < retry_at:
            return
        for folder in account.folders:
            name = folder_name(account, folder)
            if not self._claim(name):
                self.polled_at.pop(name, None)  # whenever it becomes ours, drain it at once
                continue
            last = self.polled_at.get(name)
            interval = intervals.get(folder, settings.poll_seconds)
            if last is not None and time.monotonic() - last < interval - 0.5:
                continue
            ingest_folder(self._connection(settings, account), folder, app.ruleset, app.renderer, app.secret, now,
                          result, options, account=account_name(account))
            self.polled_at[name] = time.monotonic()
        if self.account_retry_at.pop(account_name(account), None) is not None:
            logs.event(log, "imap-account-recovered", account=account.redacted())

    def _account_failed(self, account: ServerUrl, error: Exception) -> None:
        """One account of several is down: the others go on; it is retried with capped back-off, and
        its folders are let go so an instance that can reach it takes them."""
        name = account_name(account)
        _, failures = self.account_retry_at.get(name, (0.0, 0))
        delay = min(2.0 ** (failures + 1), MAX_ACCOUNT_BACKOFF_SECONDS)
        self.account_retry_at[name] = (time.monotonic() + delay, failures + 1)
        logs.event(log, "imap-account-unavailable", level=logging.WARNING, account=account.redacted(), error=str(error),
                   failures=failures + 1, retry_in=delay)  # the other accounts go on
        mailbox = self.mailboxes.pop(name, None)
        if mailbox is not None:
            mailbox.close()
        if self.locks is not None:
            for folder in account.folders:
                self.locks.release(folder_name(account, folder))

    def _claim(self, name: str) -> bool:
        if self.locks.claim(name):
            self._waiting_for.discard(name)
            return True
        if name not in self._waiting_for:
            log.info("%s is ingested by another instance; trying to take it over every %.0f s", name,
                     CLAIM_RETRY_SECONDS)
            if not self.mailboxes and not self.polled_at:  # e.g. `run --once` beside running daemons
                log.warning("skipping %s: another instance is ingesting it", name)
            self._waiting_for.add(name)
        return False

    def _connection(self, settings: Settings, account: ServerUrl) -> Mailbox:
        name = account_name(account)
        mailbox = self.mailboxes.get(name)
        if mailbox is None or not mailbox.connected:
            mailbox = Mailbox(account, read_timeout=settings.imap_timeout)
            mailbox.connect()
            self.mailboxes[name] = mailbox
        return mailbox

    def close(self) -> None:
        """Close the IMAP connections and let go of the folders."""
        for mailbox in self.mailboxes.values():
            mailbox.close()
        self.mailboxes.clear()
        if self.locks is not None:
            self.locks.release_all()


def adopt_folder_states(settings: Settings) -> None:
    """Folder checkpoints from before several accounts (account "") belong to the first account:
    it goes on from where it was instead of reading its folders again."""
    if not settings.mailboxes:
        return
    first = account_name(settings.mailboxes[0])
    mine = FolderState.select(FolderState.folder).where(FolderState.account == first)
    FolderState.update(account=first).where((FolderState.account == "") & FolderState.folder.not_in(mine)).execute()


def _sleep(seconds: float, keep_waiting: Callable[[], bool]) -> None:
    deadline = time.monotonic() + seconds
    while keep_waiting() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, 0.2))
