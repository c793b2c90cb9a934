"""Render decided mail into bytes: the sender's first step, so a tick pays only for its decisions.

A tick (notify.py) writes each notification as an outbox row holding the template's name, a JSON
snapshot of its variables as they were when the mail was decided (`context`; what the ticket's
append-only past shows, its history and last message, is read here as of that moment), and the fixed
Message-ID, reply token, recipients and subject; its deliveries wait in "rendering", which the
sender never claims. `render_pending` turns such rows into MIME bytes a batch at a time, each
batch written in one short transaction that also releases its deliveries to the sender. A row is
pending while its `context` is set, and only such rows are written (the context is cleared with
the same statement), so it is idempotent; a crash before its commit leaves the rows to be rendered
again: nothing decided is lost.

A row that cannot be rendered (a broken or missing template, or built headers that do not verify,
header injection) is marked failed with the reason, the lead is told once (`on_failed`), and it is tried again
with the sender's back-off — so fixing the template sends it. Its deliveries stay in "rendering"
meanwhile, so nothing (not `outbox retry`, not another sender) can send a mail that has no bytes.
On PostgreSQL several senders may render at once: each claims its batch with FOR UPDATE SKIP
LOCKED, so no row is rendered by two.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from escalate.mail.compose import build_mail
from escalate.ops import crashpoints
from escalate.outbound.notify import SENDER_NAME, template_variables, thread_ids
from escalate.outbound.settle import WAITING, backoff, settle
from escalate.outbound.templates import Renderer
from escalate.store import db
from escalate.store.db import write_transaction
from escalate.store.models import Delivery, Outbox

log = logging.getLogger(__name__)

RENDER_BATCH = 200  # rows per transaction: bounded memory and lock time whatever the backlog
# stop starting new batches after this (the rest waits for the next run), so a large backlog
# cannot hold up sending what is already rendered for long; about 5,000 mails here, far more than
# a tick decides, and with the send's own budget well inside the stage's stuck limit (300 s)
TIME_BUDGET_SECONDS = 60.0


@dataclass
class RenderResult:
    composed: int = 0  # mail built from a claimed row (rendered + failed, unless another sender won)
    rendered: int = 0
    failed: int = 0
    seconds: float = 0.0  # spent composing mail (templates and MIME), not in the database
    failed_ids: list[int] = field(default_factory=list)


def compose(row: Outbox, renderer: Renderer) -> bytes:
    """The mail an outbox row describes, as bytes (raises TemplateProblem or UnsafeMail)."""
    headers = row.headers or {}
    thread = headers.get("thread")
    if thread is None:
        thread = thread_ids(row.ticket_id, before_outbox_id=row.id)
    # what the tick left to the renderer (the ticket's history, its last message) as of the decision
    rendered = renderer.render(row.template, template_variables(row.context, row.ticket_id, row.created_at))
    return build_mail(
        mail_from=row.mail_from, from_name=SENDER_NAME, to=row.recipients, subject=row.subject,
        text=rendered.text, html=rendered.html, message_id=row.message_id, date=row.created_at,
        in_reply_to=thread[-1] if thread else None, references=thread, reply_to=headers.get("reply_to"),
        extra_headers=dict(headers.get("extra") or []),
    )


def _unrendered(batch: int, lock: bool, now: datetime) -> list[Outbox]:
    # a row that failed to render is tried again when its back-off has passed
    # a suppressed row is not rendered unless someone retries it (outbox.retry queues it): a flood
    # held by a cap must not keep the sender rendering mail nobody gets while real mail waits
    query = (Outbox.select().where(Outbox.context.is_null(False) & (
        (Outbox.status == "queued") | ((Outbox.status == "failed") & (Outbox.next_attempt_at <= now))))
             .order_by(Outbox.id).limit(batch))
    if lock:
        query = query.for_update(skip_locked=True)
    return list(query)


def render_pending(renderer: Renderer, now: datetime, *, batch: int = RENDER_BATCH,
                   time_budget: float = TIME_BUDGET_SECONDS,
                   on_failed: Callable[[Outbox, datetime], None] | None = None) -> RenderResult:
    """Render every outbox row whose mail is not rendered yet, a batch per transaction."""
    result = RenderResult()
    deadline = time.monotonic() + time_budget
    while time.monotonic() < deadline:
        if db.shared():
            # the row locks last until commit: render inside the claiming transaction
            with write_transaction():
                rows = _unrendered(batch, lock=True, now=now)
                _record(_compose_all(rows, renderer, result), now, on_failed, result)
        else:
            # one sender per SQLite database (instance.py): render outside the write lock, so the
            # tick is not kept waiting, then write only rows that are still unrendered
            rows = _unrendered(batch, lock=False, now=now)
            outcomes = _compose_all(rows, renderer, result)
            with write_transaction():
                _record(outcomes, now, on_failed, result)
        if not rows:
            break
    return result


def _compose_all(rows: list[Outbox], renderer: Renderer, result: RenderResult) -> list[tuple[Outbox, bytes | str]]:
    outcomes: list[tuple[Outbox, bytes | str]] = []
    started = time.perf_counter()
    for row in rows:
        try:
            outcomes.append((row, compose(row, renderer)))
        except Exception as error:  # TemplateProblem, UnsafeMail, or a bug: this row fails, not the batch
            log.error("outbox %s (%s): could not render %s: %s", row.id, row.kind, row.template, error)
            outcomes.append((row, f"could not render: {error}"))
    result.seconds += time.perf_counter() - started
    result.composed += len(outcomes)
    return outcomes


def _record(outcomes: list[tuple[Outbox, bytes | str]], now: datetime,
            on_failed: Callable[[Outbox, datetime], None] | None, result: RenderResult) -> None:
    rendered: list[int] = []
    recovered: list[int] = []
    for row, outcome in outcomes:
        if isinstance(outcome, bytes):
            written = (Outbox.update(raw=outcome, context=None)
                       .where((Outbox.id == row.id) & Outbox.context.is_null(False)).execute())
            if written:
                rendered.append(row.id)
                if row.status == "failed":
                    recovered.append(row.id)  # an earlier attempt failed: its status comes from its deliveries again
        else:
            _failed(row, outcome, now, backoff(row.attempts + 1), on_failed)
            result.failed += 1
            result.failed_ids.append(row.id)
        crashpoints.hit("in-render-before-commit")  # a kill here: the whole batch renders again
    if rendered:
        # their recipients can be sent to now, in one statement for the batch (a waiting
        # recipient's only error is an earlier failure to render)
        Delivery.update(status="queued", last_error=None).where(
            Delivery.outbox.in_(rendered) & (Delivery.status == WAITING)).execute()
        result.rendered += len(rendered)
    if recovered:
        settle(recovered, now)


def _failed(row: Outbox, reason: str, now: datetime, wait, on_failed: Callable[[Outbox, datetime], None] | None) -> None:
    """Mark the row failed with the reason, to be tried again after `wait`; tell the lead once."""
    reason = reason[:2000]
    first = row.status != "failed"
    Outbox.update(status="failed", last_error=reason, attempts=Outbox.attempts + 1,
                  next_attempt_at=now + wait).where(Outbox.id == row.id).execute()
    # the reason is on each waiting recipient too, which is what the lead's notice lists
    Delivery.update(last_error=reason).where((Delivery.outbox == row.id) & (Delivery.status == WAITING)).execute()
    if first and on_failed is not None:
        on_failed(Outbox.get_by_id(row.id), now)
