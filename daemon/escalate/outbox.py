"""Send queued mail with aiosmtplib: claim, send over one reused connection, record. The only
module that imports aiosmtplib.

Failures are classified as RELIABILITY.md 1.11 says: 4xx, disconnects and timeouts are retried
with capped exponential back-off; 5xx is permanent. Envelope sender and recipients are always
passed explicitly (aiosmtplib would otherwise read them from the headers). A crash after DATA and
before the row is marked sent re-sends the same bytes with the same Message-ID — the one
tolerated duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import aiosmtplib

from . import crashpoints
from .config import ServerUrl
from .db import write_transaction
from .models import Outbox

log = logging.getLogger(__name__)

SEND_BATCH = 200
FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(minutes=10)
MAX_ATTEMPTS = 50  # about 8 hours at the capped interval; then the row is failed for a person to retry


@dataclass
class SendResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    connections: int = 0
    errors: list[str] = field(default_factory=list)


class SmtpUnavailable(RuntimeError):
    """The SMTP server cannot be reached; everything stays queued."""


def backoff(attempts: int) -> timedelta:
    return min(FIRST_RETRY * (2 ** max(attempts - 1, 0)), MAX_RETRY)


def _client(url: ServerUrl) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=url.host, port=url.port, use_tls=url.tls, start_tls=url.starttls or None,
        tls_context=ssl.create_default_context() if (url.tls or url.starttls) else None,
        username=url.username, password=url.password, timeout=30,
    )


def send_due(url: ServerUrl, now: datetime, *, batch: int = SEND_BATCH) -> SendResult:
    """Send every queued row whose time has come. Blocking wrapper for the daemon loop and CLI."""
    return asyncio.run(_send_due(url, now, batch))


async def _send_due(url: ServerUrl, now: datetime, batch: int) -> SendResult:
    result = SendResult()
    rows = list(Outbox.select().where((Outbox.status == "queued") & (Outbox.next_attempt_at <= now))
                .order_by(Outbox.next_attempt_at, Outbox.id).limit(batch))
    if not rows:
        return result
    smtp: aiosmtplib.SMTP | None = None
    try:
        for row in rows:
            if smtp is None or not smtp.is_connected:
                smtp = _client(url)
                try:
                    await smtp.connect()
                except (aiosmtplib.SMTPException, OSError) as error:
                    # the server is down: leave this and the remaining rows for later, with back-off
                    for pending in rows[rows.index(row):]:
                        _retry_later(pending, now, f"connect: {error}")
                        result.retrying += 1
                    result.errors.append(f"SMTP {url.redacted()}: {error}")
                    return result
                result.connections += 1
            await _send_one(smtp, row, now, result)
    finally:
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()
    return result


async def _send_one(smtp: aiosmtplib.SMTP, row: Outbox, now: datetime, result: SendResult) -> None:
    try:
        refused, _reply = await smtp.sendmail(row.mail_from, row.recipients, row.raw)
    except aiosmtplib.SMTPRecipientsRefused as error:
        _fail(row, now, "all recipients refused: " + "; ".join(f"{e.recipient}: {e.code} {e.message}" for e in error.recipients))
        result.failed += 1
        return
    except aiosmtplib.SMTPResponseException as error:
        if 400 <= error.code < 500:
            _retry_later(row, now, f"{error.code} {error.message}")
            result.retrying += 1
        else:
            _fail(row, now, f"{error.code} {error.message}")
            result.failed += 1
        return
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as error:
        # disconnect or timeout, possibly after the final "." — retry; the same Message-ID goes again
        _retry_later(row, now, f"{type(error).__name__}: {error}")
        result.retrying += 1
        return
    crashpoints.hit("after-data-before-mark-sent")
    with write_transaction():
        row.status = "sent"
        row.sent_at = now
        row.attempts += 1
        row.last_error = ("refused: " + "; ".join(f"{rcpt}: {code} {text}" for rcpt, (code, text) in refused.items())) if refused else None
        row.save()
    result.sent += 1


def _retry_later(row: Outbox, now: datetime, error: str) -> None:
    with write_transaction():
        row.attempts += 1
        row.last_error = error
        if row.attempts >= MAX_ATTEMPTS:
            row.status = "failed"
        else:
            row.next_attempt_at = now + backoff(row.attempts)
        row.save()
    log.warning("outbox %s (%s): will retry: %s", row.id, row.message_id, error)


def _fail(row: Outbox, now: datetime, error: str) -> None:
    with write_transaction():
        row.attempts += 1
        row.status = "failed"
        row.last_error = error
        row.save()
    log.error("outbox %s (%s) failed permanently: %s", row.id, row.message_id, error)


def retry(ids: list[int] | None, now: datetime) -> int:
    """Put failed rows (or the given ones) back in the queue now; returns how many."""
    query = Outbox.update(status="queued", next_attempt_at=now).where(Outbox.status.in_(("failed", "queued")))
    if ids:
        query = query.where(Outbox.id.in_(ids))
    else:
        query = query.where(Outbox.status == "failed")
    with write_transaction():
        return query.execute()
