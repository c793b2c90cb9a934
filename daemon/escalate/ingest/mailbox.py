"""IMAP: connect, select a folder, list new UIDs, fetch raw messages, flag or move them after the
commit, wait in IDLE. The only module that imports imapclient.

imapclient sets no socket timeout by default and leaves reconnection to us
(a silently dead TCP connection would otherwise hang a read forever), so every connection gets
a connect and a read timeout and any socket or
protocol error surfaces as `MailboxUnavailable`, which the caller answers with back-off.
Messages are fetched with BODY.PEEK[] so reading them does not mark them \\Seen for people
who share the mailbox; marking is a separate, explicit step done only after the commit.

IDLE: `idle_check()` swallows socket errors and EOF and just returns nothing, so a dead
connection looks like "no new mail" (imapclient #449, #565). Every IDLE therefore ends within
`IDLE_RENEW_SECONDS` (RFC 2177: servers may log out after 30 minutes; the imapclient docs advise
10), and is followed by a NOOP under the read timeout: a dead path raises instead of hanging.
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

import imapclient
from imapclient.exceptions import IMAPClientError

from escalate.config import ServerUrl
from escalate.errors import EscalateError

log = logging.getLogger(__name__)

FETCH_BATCH = 100                  # messages per FETCH (at most 500: a backlog drains in bounded memory)
FETCH_BATCH_BYTES = 16 * 1024 * 1024  # and at most this much mail per FETCH, so RSS stays flat
IDLE_RENEW_SECONDS = 540.0         # re-issue IDLE at least every 9 minutes, before the server's autologout
IDLE_POLL_SECONDS = 1.0            # how often an IDLE wait looks at its stop condition


class MailboxUnavailable(EscalateError, RuntimeError):
    """The IMAP server cannot be reached or broke the session: retry later with back-off."""

    def message(self) -> str:
        return f"{self}: is the IMAP server up and ESCALATE_IMAP_URL right?"


@dataclass(frozen=True)
class Fetched:
    """One message as fetched: its raw bytes, or only its header block when it is over the limit."""

    uid: int
    raw: bytes
    size: int               # RFC822.SIZE as the server reports it
    headers_only: bool = False
    at: datetime | None = None  # imported history: the message's own time, stored as when it came (history.py)
    arrived_at: datetime | None = None  # when the IMAP server received it (INTERNALDATE)


_ERRORS = (OSError, socket.timeout, IMAPClientError, ssl.SSLError)


def _aware(value) -> datetime | None:
    """INTERNALDATE as an aware UTC time (imapclient gives it naive, in this machine's zone)."""
    if not isinstance(value, datetime):
        return None
    return (value.astimezone() if value.tzinfo is None else value).astimezone(timezone.utc)


class Mailbox:
    def __init__(self, url: ServerUrl, *, read_timeout: float = 60.0):
        self.url = url
        self.read_timeout = read_timeout
        self._client: imapclient.IMAPClient | None = None
        self.selected: str | None = None
        self.writable = False
        # one IMAP command at a time: during fetch_ahead its thread and the caller share the session
        self._lock = threading.RLock()

    def __enter__(self) -> Mailbox:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        client = None
        try:
            client = imapclient.IMAPClient(
                self.url.host, port=self.url.port, ssl=self.url.tls,
                ssl_context=ssl.create_default_context() if self.url.tls else None,
                timeout=imapclient.SocketTimeout(connect=15.0, read=self.read_timeout),
            )
            # imapclient (4.1) sets imaplib's debug level to 5 on every connection, and imaplib then
            # formats each response with %-formatting *before* handing it to the (disabled) logger:
            # the repr of every fetched mail, twice — ~14% of ingest CPU, and mail bodies in the
            # debug log of anyone who turns DEBUG on. imapclient's own logging is unaffected.
            client._imap.debug = 0
            if self.url.starttls:
                client.starttls(ssl.create_default_context())
            client.login(self.url.username or "", self.url.password or "")
        except _ERRORS as error:
            if client is not None:  # a refused login or STARTTLS: the socket would otherwise stay open until GC
                try:
                    client.shutdown()
                except Exception:
                    pass
            raise MailboxUnavailable(f"IMAP {self.url.redacted()}: {error}") from None
        self._client = client
        self.selected = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
            self.selected = None
            if client is not None:
                try:
                    client.logout()
                except Exception:  # the session is gone either way; a dead socket may raise anything
                    try:
                        client.shutdown()
                    except Exception:
                        pass

    @property
    def client(self) -> imapclient.IMAPClient:
        if self._client is None:
            raise MailboxUnavailable("IMAP: not connected")
        return self._client

    def _call(self, what: str, function: Callable, *args, **kwargs):
        with self._lock:
            try:
                return function(*args, **kwargs)
            except _ERRORS as error:
                self.close()  # a broken session is not reused
                raise MailboxUnavailable(f"IMAP {what}: {error}") from None

    def folder_names(self) -> list[str]:
        """Every folder of the account (LIST: nothing is selected or changed)."""
        return [str(name) for _flags, _delimiter, name in self._call("list folders", self.client.list_folders)]

    @property
    def supports_idle(self) -> bool:
        return self._call("capabilities", self.client.has_capability, "IDLE")

    def select(self, folder: str, *, writable: bool = False) -> int:
        """Select `folder` (read-only unless we must flag or move); returns its UIDVALIDITY."""
        info = self._call(f"select {folder!r}", self.client.select_folder, folder, readonly=not writable)
        self.selected, self.writable = folder, writable
        return int(info[b"UIDVALIDITY"])

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid` in the selected folder, ascending."""
        # "UID n:*" always includes the highest UID even when it is below n (RFC 3501 §6.4.8)
        uids = self._call("search", self.client.search, ["UID", f"{last_uid + 1}:*"])
        return sorted(uid for uid in uids if uid > last_uid)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID still present."""
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 500):
            chunk = uids[start:start + 500]
            wanted = set(chunk)  # a server may add unsolicited FETCH responses for other messages
            data = self._call("fetch sizes", self.client.fetch, chunk, ["RFC822.SIZE"])
            sizes.update({uid: int(item.get(b"RFC822.SIZE", 0)) for uid, item in data.items() if uid in wanted})
        return sizes

    def fetch_batches(self, uids: list[int], *, max_bytes: int) -> Iterator[list[Fetched]]:
        """The messages of `uids` in UID order, a batch per FETCH (≤ FETCH_BATCH messages and about
        FETCH_BATCH_BYTES). A message over `max_bytes` comes as its header block only. A UID that
        another client expunged meanwhile is missing from the result (logged once)."""
        sizes = self.sizes(uids)
        for uid in uids:
            if uid not in sizes:
                log.info("uid %s in %s vanished before fetch (moved or expunged by another client)", uid, self.selected)
        batch: list[int] = []
        batch_bytes = 0
        for uid in (u for u in uids if u in sizes):
            if sizes[uid] > max_bytes:
                if batch:
                    yield self._fetch(batch, sizes)
                    batch, batch_bytes = [], 0
                yield self._fetch([uid], sizes, headers_only=True)
                continue
            if batch and (len(batch) >= FETCH_BATCH or batch_bytes + sizes[uid] > FETCH_BATCH_BYTES):
                yield self._fetch(batch, sizes)
                batch, batch_bytes = [], 0
            batch.append(uid)
            batch_bytes += sizes[uid]
        if batch:
            yield self._fetch(batch, sizes)

    @contextmanager
    def fetch_ahead(self, uids: list[int], *, max_bytes: int) -> Iterator[Iterator[list[Fetched]]]:
        """fetch_batches, with the next batch fetched by a thread while the caller stores the
        current one (Dovecot works on the other core meanwhile; SQLite and the fsync release the
        GIL). At most one batch waits ready, so memory stays about three batches. A fetch error
        reaches the caller after the batches fetched before it, as with fetch_batches. The caller's
        own IMAP calls (mark_processed) wait for the FETCH in flight. Leaving the block stops the
        thread and waits for it, so nothing uses the session after."""
        ahead = _FetchAhead(self.fetch_batches(uids, max_bytes=max_bytes))
        try:
            yield iter(ahead)
        finally:
            ahead.stop()

    def _fetch(self, uids: list[int], sizes: dict[int, int], *, headers_only: bool = False) -> list[Fetched]:
        with self._lock:
            return self._fetch_locked(uids, sizes, headers_only=headers_only)

    def _fetch_locked(self, uids: list[int], sizes: dict[int, int], *, headers_only: bool = False) -> list[Fetched]:
        item, key = (b"BODY.PEEK[HEADER]", b"BODY[HEADER]") if headers_only else (b"BODY.PEEK[]", b"BODY[]")
        try:
            data = self.client.fetch(uids, [item, b"INTERNALDATE"])
        except IMAPClientError as error:
            if len(uids) == 1 or "expunge" not in str(error).lower():
                if len(uids) == 1 and "expunge" in str(error).lower():
                    log.info("uid %s in %s expunged during fetch", uids[0], self.selected)
                    return []
                self.close()
                raise MailboxUnavailable(f"IMAP fetch: {error}") from None
            # "NO Some of the requested messages no longer exist": fetch one by one, skip the gone
            return [fetched for uid in uids for fetched in self._fetch([uid], sizes, headers_only=headers_only)]
        except _ERRORS as error:
            self.close()
            raise MailboxUnavailable(f"IMAP fetch: {error}") from None
        fetched = []
        for uid in uids:
            raw = data.get(uid, {}).get(key)
            if raw is None:
                log.info("uid %s in %s expunged during fetch", uid, self.selected)
                continue
            fetched.append(Fetched(uid, bytes(raw), sizes.get(uid, len(raw)), headers_only,
                                   arrived_at=_aware(data[uid].get(b"INTERNALDATE"))))
        return fetched

    def mark_processed(self, uids: list[int], action: str) -> None:
        """After the commit: leave the mail, set \\Seen ("flag"), or move it ("move:FOLDER").
        Repeating it is harmless (a flag set twice, a UID already moved is simply absent)."""
        if not uids or action == "leave":
            return
        if action == "flag":
            self._call("store \\Seen", self.client.add_flags, uids, [imapclient.SEEN], silent=True)
        elif action.startswith("move:"):
            target = action[5:]
            if not self._call("folder check", self.client.folder_exists, target):
                self._call(f"create {target!r}", self.client.create_folder, target)
            if self._call("capabilities", self.client.has_capability, "MOVE"):
                self._call(f"move to {target!r}", self.client.move, uids, target)
            else:  # RFC 6851 fallback: copy, mark deleted, expunge just these UIDs (UIDPLUS)
                self._call(f"copy to {target!r}", self.client.copy, uids, target)
                self._call("delete", self.client.delete_messages, uids, silent=True)
                self._call("expunge", self.client.uid_expunge, uids)
        else:
            raise ValueError(f"unknown processed-mail action {action!r}")

    def wait_for_mail(self, seconds: float, should_stop: Callable[[], bool] = lambda: False) -> bool:
        """IDLE on the selected folder for up to `seconds` (capped at IDLE_RENEW_SECONDS); True as
        soon as the server announces new mail. Ends with a NOOP, so a dead connection raises
        MailboxUnavailable within the read timeout instead of hanging."""
        seconds = min(seconds, IDLE_RENEW_SECONDS)
        client = self.client
        self._call("idle", client.idle)
        deadline = time.monotonic() + seconds
        news = False
        try:
            while not news and not should_stop():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                responses = self._call("idle check", client.idle_check, timeout=min(left, IDLE_POLL_SECONDS))
                news = any(len(r) >= 2 and r[1] in (b"EXISTS", b"RECENT") for r in responses if isinstance(r, tuple))
                if any(r[0] == b"BYE" for r in responses if isinstance(r, tuple) and r):
                    raise MailboxUnavailable("IMAP idle: the server said BYE")
        finally:
            if self._client is not None:
                self._call("idle done", client.idle_done)
        self._call("noop", client.noop)
        return news


class _FetchAhead:
    """Runs a batch generator in a thread, one batch ahead of its consumer."""

    _END = object()

    def __init__(self, batches: Iterator[list[Fetched]]):
        self._ready: queue.Queue = queue.Queue(maxsize=1)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(batches,), name="escalate-fetch-ahead", daemon=True)
        self._thread.start()

    def _run(self, batches: Iterator[list[Fetched]]) -> None:
        try:
            for batch in batches:
                if not self._put(batch):
                    return
            self._put(self._END)
        except BaseException as error:  # handed to the consumer, raised there in order
            self._put(error)
        finally:
            batches.close()

    def _put(self, item: object) -> bool:
        while not self._stopping.is_set():
            try:
                self._ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[list[Fetched]]:
        while True:
            item = self._ready.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()  # a FETCH in flight ends within the read timeout
