"""Post the queued chat deliveries ("chat:<name>") through Apprise, beside the mail sender.

A chat post is a delivery of its notification's outbox row, so it is retried, failed and settled
exactly as a mail recipient is — by outbox.py's own recorder: a failure without an HTTP status
(refused connection, timeout, 5xx, 408, 429) is retried with the mail sender's back-off; any other
4xx is permanent, with the service's answer as the reason, and the lead is told once
(`on_failed`). Mail and chat are claimed apart (outbox.claim skips chat recipients), so a dead
webhook never holds up mail nor a dead SMTP server chat. A post stays "queued" until its outcome
is recorded: a sender killed in between posts it again — the one tolerated duplicate, never a loss.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Mapping

from escalate.ops import crashpoints
from escalate.outbound import chat, outbox
from escalate.store import db
from escalate.store import outbox as store_outbox
from escalate.store.models import Delivery, Outbox

log = logging.getLogger(__name__)

CLAIM_BATCH = 100
TIMEOUT_SECONDS = 15.0  # per post, connecting and waiting for the answer
# stop starting new posts after this (the rest waits for the next run), like the mail sender's budget
TIME_BUDGET_SECONDS = 20.0
# 4xx answers that mean "later", not "never": the request timed out, or we were rate limited
_RETRYABLE_4XX = (408, 425, 429)
_STATUS = re.compile(r"error=(\d{3})")

@dataclass(frozen=True)
class PostOutcome:
    ok: bool
    code: int | None  # the HTTP status of a failure, when the service answered
    reason: str | None  # what went wrong, with nothing of the URL in it


def post(url: str, title: str, body: str, *, timeout: float = TIMEOUT_SECONDS) -> PostOutcome:
    """Post one message to one channel URL through Apprise, in the service's own Markdown."""
    apprise = chat.load_apprise()
    service = apprise.Apprise()
    if not service.add(url):
        return PostOutcome(False, None, f"Apprise cannot use the {chat.redacted(url)} URL")
    result = service.notify(body=body, title=title, body_format=apprise.NotifyFormat.MARKDOWN, timeout=timeout)
    if result:
        return PostOutcome(True, None, None)
    messages = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR")]
    text = chat.scrub("; ".join(messages), url) or f"the service did not accept the post ({result.status.name})"
    codes = [int(found) for found in _STATUS.findall(text)]
    return PostOutcome(False, codes[-1] if codes else None, text[:500])


def _retryable(outcome: PostOutcome) -> bool:
    code = outcome.code
    return code is None or not 400 <= code < 500 or code in _RETRYABLE_4XX


def claim(now: datetime, batch: int, owner: str) -> list[tuple[Delivery, dict]]:
    """The due chat deliveries with what each is to post (the row's stored title and body)."""
    query = (Delivery.select(Delivery, Outbox.id, Outbox.headers, Outbox.message_id).join(Outbox)
             .order_by(Delivery.next_attempt_at, Delivery.id).limit(batch))
    if db.shared():
        # several instances post at once: a post is leased as outbox.claim leases mail
        ids = store_outbox.lease(now, batch, owner, outbox.LEASE_SECONDS, chat=True)
        rows = list(query.where(Delivery.id.in_(ids))) if ids else []
    else:
        rows = list(query.where((Delivery.status == outbox.PENDING) & (Delivery.next_attempt_at <= now)
                                & ~outbox.IS_MAIL))
    return [(row, ((row.outbox.headers or {}).get("chat") or {})) for row in rows]


def send_due(now: datetime, *, on_failed: Callable[[Outbox, datetime], None] | None = None,
             environ: Mapping[str, str] | None = None, batch: int = CLAIM_BATCH,
             timeout: float = TIMEOUT_SECONDS, time_budget: float = TIME_BUDGET_SECONDS) -> outbox.SendResult:
    """Post every chat delivery whose time has come, one at a time, each outcome recorded as it
    comes (a post is slow next to a write). Imports Apprise only when something is due."""
    result = outbox.SendResult()
    recorder = outbox._Recorder(now, result, on_failed)
    deadline = time.monotonic() + time_budget
    for delivery, message in claim(now, batch, recorder.owner):
        if time.monotonic() > deadline:
            break  # still queued and due: the next run (its lease, on PostgreSQL, runs out)
        name = chat.channel_of(delivery.recipient) or ""
        url = chat.channel_url(name, environ)
        if url is None:
            # the environment lost the variable since rules.yaml was checked: keep it until it is back
            outcome = PostOutcome(False, None, f"{chat.env_name(name)} is not set")
        else:
            outcome = post(url, message.get("title", ""), message.get("body", ""), timeout=timeout)
            if outcome.ok:
                log.info("outbox %s posted to %s (%s)", delivery.outbox_id, delivery.recipient, chat.redacted(url))
                crashpoints.hit("after-chat-post-before-mark-sent")
        status = "sent" if outcome.ok else "retry" if _retryable(outcome) else "failed"
        error = f"{delivery.recipient}: {outcome.reason}"
        if not outcome.ok and error not in result.errors:
            result.errors.append(error)
        job = outbox._Job(delivery.id, delivery.outbox_id, "", delivery.recipient, delivery.attempts, b"",
                          delivery.outbox.message_id)
        recorder.pending.append(outbox._Outcome(job, status, outcome.code, outcome.reason))
        recorder.flush(strict=True)
    return result


def channels(environ: Mapping[str, str] | None = None) -> list[dict]:
    """The configured channels, URLs redacted, each with its last delivery (for `chat list`)."""
    found = []
    for name, url in sorted(chat.configured(environ).items()):
        last = (Delivery.select().where(Delivery.recipient == chat.recipient(name))
                .order_by(Delivery.created_at.desc(), Delivery.id.desc()).first())
        found.append({
            "name": name, "variable": chat.env_name(name), "url": chat.redacted(url),
            "last_delivery": None if last is None else {
                "outbox": last.outbox_id, "status": last.status, "attempts": last.attempts,
                "created_at": last.created_at.isoformat(), "sent_at": last.sent_at.isoformat() if last.sent_at else None,
                "error": last.last_error},
        })
    return found

