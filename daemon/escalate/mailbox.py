"""IMAP: connect, select a folder, list new UIDs, fetch raw messages. The only module that
imports imapclient.

imapclient sets no socket timeout by default and leaves reconnection to us
(RELIABILITY.md 1.10), so every connection gets a connect and a read timeout and any socket or
protocol error surfaces as `MailboxUnavailable`, which the daemon answers with back-off.
Messages are fetched with BODY.PEEK[] so reading them does not mark them \\Seen for people
who share the mailbox.
"""

from __future__ import annotations

import socket
import ssl
from typing import Iterator

import imapclient
from imapclient.exceptions import IMAPClientError

from .config import ServerUrl

FETCH_BATCH = 100


class MailboxUnavailable(RuntimeError):
    """The IMAP server cannot be reached or broke the session: retry later with back-off."""


class Mailbox:
    def __init__(self, url: ServerUrl, *, read_timeout: float = 60.0):
        self.url = url
        self.read_timeout = read_timeout
        self._client: imapclient.IMAPClient | None = None

    def __enter__(self) -> "Mailbox":
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> None:
        try:
            client = imapclient.IMAPClient(
                self.url.host, port=self.url.port, ssl=self.url.tls,
                timeout=imapclient.SocketTimeout(connect=15.0, read=self.read_timeout),
            )
            if self.url.starttls:
                client.starttls(ssl.create_default_context())
            client.login(self.url.username or "", self.url.password or "")
        except (OSError, socket.timeout, IMAPClientError) as error:
            raise MailboxUnavailable(f"IMAP {self.url.redacted()}: {error}") from None
        self._client = client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.logout()
            except (OSError, IMAPClientError):
                pass  # the session is gone either way

    @property
    def client(self) -> imapclient.IMAPClient:
        if self._client is None:
            raise MailboxUnavailable("IMAP: not connected")
        return self._client

    def select(self, folder: str) -> int:
        """Select `folder` read-only; returns its UIDVALIDITY."""
        try:
            info = self.client.select_folder(folder, readonly=True)
        except (OSError, IMAPClientError) as error:
            raise MailboxUnavailable(f"IMAP select {folder!r}: {error}") from None
        return int(info[b"UIDVALIDITY"])

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above `last_uid` in the selected folder, ascending."""
        try:
            # "UID n:*" always includes the highest UID even when it is below n (RFC 3501 §6.4.8)
            uids = self.client.search(["UID", f"{last_uid + 1}:*"])
        except (OSError, IMAPClientError) as error:
            raise MailboxUnavailable(f"IMAP search: {error}") from None
        return sorted(uid for uid in uids if uid > last_uid)

    def fetch(self, uids: list[int]) -> Iterator[tuple[int, bytes]]:
        """(uid, raw bytes) for each UID still present, in UID order, FETCH_BATCH at a time."""
        for start in range(0, len(uids), FETCH_BATCH):
            chunk = uids[start:start + FETCH_BATCH]
            try:
                data = self.client.fetch(chunk, ["BODY.PEEK[]"])
            except (OSError, IMAPClientError) as error:
                raise MailboxUnavailable(f"IMAP fetch: {error}") from None
            for uid in sorted(data):
                raw = data[uid].get(b"BODY[]")
                if raw is not None:  # expunged by another client between SEARCH and FETCH
                    yield uid, bytes(raw)
