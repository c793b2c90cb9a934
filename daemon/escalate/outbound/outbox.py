"""Send queued mail with aiosmtplib: claim due deliveries, send them over a small pool of reused
connections, record the outcomes in batches. The only module that imports aiosmtplib.

Each recipient of an outbox row is a `Delivery` with its own SMTP transaction and VERP return
path, so a refused recipient is retried or failed on its own and those who accepted never get
the mail twice. Failures are classified so: 4xx, disconnects and
timeouts are retried with capped exponential back-off; 5xx is permanent (the tier lead is told
once, through `on_failed`). Envelope sender and recipient are always passed explicitly —
aiosmtplib would otherwise read them from the headers. A crash after DATA and before the
outcome is recorded re-sends the same bytes with the same Message-ID: the one tolerated duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import aiosmtplib
import peewee

from escalate.config import ServerUrl
from escalate.ops import crashpoints, logs, problems
from escalate.ops.instance import identity
from escalate.outbound.settle import (
    DELIVERY_FAILURES,
    IS_MAIL,
    PENDING,
    WAITING,
    SendResult,
    backoff,
    chunks,
    lock_outbox_rows,
    settle,
    settle_all_sent,
)
from escalate.store import db, durability, models
from escalate.store import outbox as store_outbox
from escalate.store.db import write_transaction
from escalate.store.models import Delivery, Outbox

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000  # deliveries claimed per round; bounded memory whatever the backlog
CONNECTIONS = 8  # the pool: enough to hide round trips, few enough for any relay's limits (≤ 10)
# Outcomes are written as soon as the event loop has nothing else ready: the replies that arrived
# together are one transaction (at most FLUSH_EVERY). A kill -9 re-sends only what was accepted
# and not yet written — at most the sends in flight — with the identical Message-ID.
FLUSH_EVERY = 200
TIMEOUT_SECONDS = 30.0  # per SMTP operation
# stop starting new sends after this (the rest stays queued for the next run), so a slow server
# cannot hold up the daemon's other stages for longer than this plus one send's timeout
TIME_BUDGET_SECONDS = 20.0
MAX_ATTEMPTS = 50  # about 8 hours at the capped interval; then failed, for a person to retry
LEASE_SECONDS = 60.0  # PostgreSQL: how long a claim holds (Settings.send_lease_seconds)

class SmtpUnavailable(RuntimeError):
    """The SMTP server could not be reached at all while mail was due; everything stays queued
    (each delivery backs off as usual). `result` is what the run did record."""

    def __init__(self, message: str, result: SendResult | None = None):
        super().__init__(message)
        self.result = result or SendResult()


class SmtpLoginRefused(SmtpUnavailable):
    """The SMTP server refused our login (5xx to AUTH): a configuration error, not a temporary one.
    Nothing is sent and no delivery is charged an attempt until the login works again."""


def _client(url: ServerUrl, timeout: float) -> aiosmtplib.SMTP:
    secure = url.tls or url.starttls
    return aiosmtplib.SMTP(
        hostname=url.host, port=url.port, use_tls=url.tls, start_tls=url.starttls,
        # the system's trust store (SSL_CERT_FILE/SSL_CERT_DIR are honoured), hostname checked
        tls_context=ssl.create_default_context() if secure else None,
        username=url.username, password=url.password, timeout=timeout,
    )


# -- outcomes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Job:
    delivery_id: int
    outbox_id: int
    mail_from: str
    recipient: str
    attempts: int
    raw: bytes
    message_id: str


@dataclass(frozen=True)
class _Outcome:
    job: _Job
    status: str  # sent, retry, failed, refused
    code: int | None = None
    error: str | None = None
    session_lost: bool = False  # a disconnect, timeout or unexpected error: the connection is not reused


class _Recorder:
    """Collects outcomes and writes them in batches; each batch also settles its outbox rows."""

    def __init__(self, now: datetime, result: SendResult, on_failed: Callable[[Outbox, datetime], None] | None,
                 owner: str | None = None):
        self.now = now
        self.result = result
        self.on_failed = on_failed
        self.owner = owner or identity()
        self.pending: list[_Outcome] = []
        self._final = False
        self._failing = False

    def add(self, outcome: _Outcome) -> None:
        if not self.pending:
            # after the callbacks already ready: replies that arrived together share one commit
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append(outcome)
        if len(self.pending) >= FLUSH_EVERY:
            self.flush()

    def flush(self, *, strict: bool = False) -> None:
        """Write what is pending. On a database error the outcomes stay pending for the next
        flush; `strict` (and the final flush) raises the error instead of carrying on."""
        if not self.pending:
            return
        outcomes, self.pending = self.pending, []
        try:
            try:
                self._write(outcomes)
            except peewee.OperationalError:
                # the server closed our connection (a restart, pg_terminate_backend) but may be
                # back: peewee never reconnects by itself, so drop it and try once on a new one
                if not db.drop_broken_connection():
                    raise
                self._write(outcomes)
        except peewee.OperationalError:
            # e.g. the database stayed locked past the busy timeout: keep the outcomes for the next
            # flush (the final one raises) rather than forget mail that was sent
            self.pending[:0] = outcomes
            db.drop_broken_connection()
            if self._final or strict:
                raise
            if not self._failing:  # once per outage, not once per reply that arrives during it
                log.warning("recording %d send outcomes failed; will try again", len(outcomes), exc_info=True)
            self._failing = True
            return
        self._failing = False
        for outcome in outcomes:
            if outcome.status == "sent":
                self.result.sent += 1
            elif outcome.status == "retry":
                self.result.retrying += 1
            else:
                self.result.failed += 1

    def final_flush(self) -> None:
        self._final = True
        self.flush()

    def _write(self, outcomes: list[_Outcome]) -> None:
        now = self.now
        with write_transaction():
            lock_outbox_rows({o.job.outbox_id for o in outcomes})
            sent = [o.job.delivery_id for o in outcomes if o.status == "sent"]
            for chunk in chunks(sent, 500):
                store_outbox.mark_sent(chunk, now)
            for outcome in outcomes:
                if outcome.status != "sent":
                    self._record_failure(outcome)
            unsettled = {o.job.outbox_id for o in outcomes if o.status != "sent"}
            unsettled |= settle_all_sent({o.job.outbox_id for o in outcomes} - unsettled, now)
            settle(unsettled, now, self.on_failed, self.result)

    def _record_failure(self, outcome: _Outcome) -> None:
        job, now = outcome.job, self.now
        attempts = job.attempts + 1
        values = {"attempts": attempts, "code": outcome.code, "last_error": outcome.error}
        if outcome.status == "retry" and attempts < MAX_ATTEMPTS:
            values.update(status=PENDING, next_attempt_at=now + backoff(attempts))
            logs.event(log, "send-retry", level=logging.WARNING, outbox=job.outbox_id, to=job.recipient,
                       attempts=attempts, error=outcome.error)
        else:
            status = outcome.status if outcome.status != "retry" else "failed"
            if outcome.status == "retry":
                values["last_error"] = f"gave up after {attempts} attempts; last: {outcome.error}"
            values.update(status=status, failed_at=now)
            logs.event(log, "send-failed", level=logging.ERROR, outbox=job.outbox_id, to=job.recipient,
                       attempts=attempts, error=values["last_error"])
        values.update(lease_owner=None, lease_until=None)
        # Only while the delivery is still ours to record: an instance whose lease ran out (its
        # database connection was cut, it was paused) must not put back in the queue a delivery
        # another instance has re-claimed or sent since, nor one an admin cancelled meanwhile.
        Delivery.update(**values).where(
            (Delivery.id == job.delivery_id) & (Delivery.status == PENDING)
            & (Delivery.lease_owner.is_null() | (Delivery.lease_owner == self.owner))).execute()


# -- sending ----------------------------------------------------------------------------------

def send_due(url: ServerUrl, now: datetime, *, connections: int = CONNECTIONS, batch: int = CLAIM_BATCH,
             timeout: float = TIMEOUT_SECONDS, time_budget: float = TIME_BUDGET_SECONDS,
             on_failed: Callable[[Outbox, datetime], None] | None = None, renderer=None,
             lease_seconds: float = LEASE_SECONDS) -> SendResult:
    """Send every delivery whose time has come, `connections` at a time. Blocking, for the daemon
    loop and the CLI. `on_failed(outbox_row, now)` runs once per row that fails permanently,
    inside the transaction that records it. Mail the tick decided is rendered first, with
    `renderer` (templates.Renderer; the shipped templates when None) — render.py.
    `lease_seconds`: how long a claim holds on PostgreSQL."""
    from escalate.outbound import render, templates  # imported late: templates pull in jinja2

    render.render_pending(renderer or templates.Renderer(), now, on_failed=on_failed)
    return asyncio.run(_send_due(url, now, connections=connections, batch=batch, timeout=timeout,
                                 time_budget=time_budget, on_failed=on_failed, lease_seconds=lease_seconds))


# Outcomes of mail that was sent but could not be recorded because the database went away:
# kept with the database they belong to, and written first by the next run of this process,
# before it claims anything. Recorded late, not sent twice. A process that dies loses them: those
# are the mails sent again after the lease, with their identical Message-ID.
_unrecorded: tuple[object, list[_Outcome]] | None = None


def _carried_over() -> list[_Outcome]:
    global _unrecorded
    carried, _unrecorded = _unrecorded, None
    return carried[1] if carried is not None and carried[0] is models.database.obj else []


async def _send_due(url: ServerUrl, now: datetime, *, connections: int, batch: int, timeout: float,
                    time_budget: float, on_failed: Callable[[Outbox, datetime], None] | None,
                    lease_seconds: float) -> SendResult:
    global _unrecorded
    result = SendResult()
    recorder = _Recorder(now, result, on_failed)
    recorder.pending = _carried_over()
    feed = _Feed(now, batch, time_budget, in_flight=connections, lease_seconds=lease_seconds)
    try:
        recorder.flush(strict=True)  # what an earlier run sent must be recorded before anything is claimed
        first = feed.refill()
        if first:
            with durability.crash_safe_commits():  # a power loss may send a few mails twice
                try:
                    # one pool for the whole run: connections are reused across claim rounds
                    await asyncio.gather(*(_worker(url, feed, recorder, result, timeout)
                                           for _ in range(max(1, min(connections, first)))))
                finally:
                    for job in feed.drain():
                        if feed.login_refused is not None:
                            feed.untouched.append(job.delivery_id)  # not the mail's fault: no attempt charged
                        else:  # every connection failed: back off like any other retry
                            recorder.pending.append(_Outcome(job, "retry", None, "not attempted: no SMTP connection"))
                    recorder.final_flush()
        elif problems.recorded(problems.SMTP_LOGIN):
            await _try_login(url, timeout, result, feed)  # nothing due: still find out whether it was fixed
        if feed.error is not None:
            raise feed.error  # the database failed during a claim: the daemon backs off and retries
    except peewee.OperationalError:
        if recorder.pending:
            _unrecorded = (models.database.obj, recorder.pending)
            log.warning("the database is unavailable: %d send outcomes kept to record on the next run",
                        len(recorder.pending))
        raise
    release(feed.untouched, recorder.owner)
    _raise_for_server(url, feed, result)
    return result


def _raise_for_server(url: ServerUrl, feed: _Feed, result: SendResult) -> None:
    """After the run: say so, once for the run, when the server refused our login (a configuration
    error, kept in `status` until a login works) or could not be reached at all."""
    if feed.login_refused is not None:
        error = feed.login_refused
        detail = (f"the SMTP server {url.redacted()} refused the login ({error.code} {error.message}): correct the "
                  "user and password in ESCALATE_SMTP_URL; nothing is sent until a login works")
        problems.report(problems.SMTP_LOGIN, detail)
        raise SmtpLoginRefused(detail, result)
    if result.connections:
        problems.clear(problems.SMTP_LOGIN)
    elif result.errors:
        raise SmtpUnavailable(f"SMTP unreachable ({result.retrying} to retry): {'; '.join(result.errors)}: is the "
                              "server up and ESCALATE_SMTP_URL right? The mail stays queued and is retried", result)


def _login_refused(error: BaseException) -> bool:
    """A 5xx answer to AUTH (535: bad user or password): a configuration error. A 454 is temporary."""
    return isinstance(error, aiosmtplib.SMTPAuthenticationError) and 500 <= error.code < 600


async def _try_login(url: ServerUrl, timeout: float, result: SendResult, feed: _Feed) -> None:
    """Connect and log in without sending, to learn whether a refused login has been fixed."""
    smtp = _client(url, timeout)
    try:
        await smtp.connect()
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as error:
        if _login_refused(error):
            feed.login_refused = error
        else:
            result.errors.append(f"SMTP {url.redacted()}: {error}")
    else:
        result.connections += 1
        await _say_goodbye(smtp)


async def _say_goodbye(smtp: aiosmtplib.SMTP) -> None:
    """QUIT politely; a server that will not answer it is simply disconnected."""
    try:
        await smtp.quit()
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
        smtp.close()


def probe(url: ServerUrl, timeout: float = TIMEOUT_SECONDS) -> str:
    """Connect, say EHLO, log in when the URL carries a user, and QUIT, sending nothing: what
    `config check` asks of the SMTP server. SmtpLoginRefused when the login is refused (5xx),
    SmtpUnavailable when the server cannot be reached or answers otherwise; else what it offered."""
    async def session() -> str:
        smtp = _client(url, timeout)
        try:
            await smtp.connect()  # STARTTLS where asked, AUTH when the URL has a user (EHLO before either)
            if smtp.last_ehlo_response is None:  # a plain session without a user has not said EHLO yet
                await smtp.ehlo()
        except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as error:
            if _login_refused(error):
                raise SmtpLoginRefused(f"SMTP {url.redacted()} refused the login ({error.code} {error.message}): "
                                       "correct the user and password in ESCALATE_SMTP_URL") from None
            raise SmtpUnavailable(f"SMTP {url.redacted()}: {error}") from None
        try:
            offered = sorted(smtp.esmtp_extensions)
            logged_in = " and accepted the login" if url.username else ""
            return f"SMTP {url.redacted()} answered EHLO{logged_in} (offers {', '.join(offered) or 'no extensions'})"
        finally:
            await _say_goodbye(smtp)
    return asyncio.run(session())


class _Feed:
    """Due deliveries for the workers, claimed from the database a batch at a time."""

    def __init__(self, now: datetime, batch: int, time_budget: float, in_flight: int,
                 lease_seconds: float = LEASE_SECONDS):
        self.now = now
        self.batch = batch
        self.in_flight = in_flight
        self.lease_seconds = lease_seconds
        self.deadline = time.monotonic() + time_budget
        self.jobs: list[_Job] = []
        self.seen: set[int] = set()  # claimed in this run: in flight, or recorded
        self.exhausted = False
        self.fresh_until = float("inf")  # after this the claimed jobs' leases may be running out
        self.untouched: list[int] = []  # claimed and never started: their leases are given back
        self.error: peewee.OperationalError | None = None  # a claim that failed: the run ends, then raises
        self.login_refused: aiosmtplib.SMTPException | None = None  # a 5xx to AUTH: no worker starts another job

    def refill(self, recorder: _Recorder | None = None) -> int:
        if self.exhausted or time.monotonic() > self.deadline:
            self.exhausted = True
            return 0
        if recorder is not None:
            recorder.flush()  # what was sent must be recorded before the next claim reads the queue
        # Sends in flight on other connections are still "queued" (nothing is recorded before the
        # reply), so read that many more and skip them. What this run retries is due after `now`
        # and what it sent is no longer queued: neither comes back.
        limit = self.batch + self.in_flight
        started = time.monotonic()
        due = claim(self.now, limit, lease_seconds=self.lease_seconds)
        if db.shared():
            # start no job in the second half of its lease: by the time its SMTP transaction ends,
            # another instance may have re-claimed it
            self.fresh_until = started + self.lease_seconds / 2
        claimed = [job for job in due if job.delivery_id not in self.seen]
        self.exhausted = len(due) < limit
        self.seen.update(job.delivery_id for job in claimed)
        self.jobs.extend(reversed(claimed))
        return len(claimed)

    def next(self, recorder: _Recorder) -> _Job | None:
        if self.error is not None or self.login_refused is not None:
            return None
        if time.monotonic() > self.deadline:
            # untouched: they stay queued, due now, for the next run (or another instance)
            self.untouched.extend(job.delivery_id for job in self.jobs)
            self.jobs.clear()
            self.exhausted = True
            return None
        if self.jobs and time.monotonic() > self.fresh_until:
            # leases getting old: claim again (ours come back with a new lease unless taken meanwhile)
            self.seen.difference_update(job.delivery_id for job in self.jobs)
            # given back at the end of the run if not claimed again (nothing is in flight by then)
            self.untouched.extend(job.delivery_id for job in self.jobs)
            self.jobs.clear()
            self.exhausted = False
        if not self.jobs:
            try:
                self.refill(recorder)  # synchronous: no other worker runs in between, so one refill at a time
            except peewee.OperationalError as error:
                # the database went away: finish the sends in flight and record what can be recorded
                self.error = error
                return None
        return self.jobs.pop() if self.jobs else None

    def drain(self) -> list[_Job]:
        jobs, self.jobs = self.jobs, []
        return jobs


def claim(now: datetime, batch: int, *, owner: str | None = None, lease_seconds: float = LEASE_SECONDS) -> list[_Job]:
    """The next `batch` due deliveries, oldest first. A delivery stays "queued" until its outcome
    is recorded, so a sender killed after this point finds it again on restart.

    SQLite has one sender per database (the daemon refuses a second): a plain read. On PostgreSQL
    several instances send at once, so the claim is a lease taken in one statement (store.outbox.lease)."""
    query = (Delivery.select(Delivery.id, Delivery.mail_from, Delivery.recipient, Delivery.attempts,
                             Outbox.id, Outbox.raw, Outbox.message_id)
             .join(Outbox).order_by(Delivery.next_attempt_at, Delivery.id).limit(batch))
    if db.shared():
        ids = store_outbox.lease(now, batch, owner or identity(), lease_seconds, chat=False)
        rows = list(query.where(Delivery.id.in_(ids))) if ids else []
    else:
        rows = list(query.where((Delivery.status == PENDING) & (Delivery.next_attempt_at <= now) & IS_MAIL))
    crashpoints.hit("after-outbox-claim")
    return [_Job(row.id, row.outbox.id, row.mail_from, row.recipient, row.attempts, bytes(row.outbox.raw),
                 row.outbox.message_id) for row in rows]


def release(delivery_ids: list[int], owner: str) -> None:
    """Give back leases on deliveries this run claimed and never started, so another instance
    need not wait for them to run out. Best effort: an unreleased lease only delays them."""
    if not delivery_ids or not db.shared():
        return
    try:
        for chunk in chunks(delivery_ids, 500):
            (Delivery.update(lease_owner=None, lease_until=None)
             .where(Delivery.id.in_(chunk) & (Delivery.lease_owner == owner) & (Delivery.status == PENDING))
             .execute())
    except peewee.OperationalError:
        log.warning("giving back %d unstarted claims failed; they are sent after their lease", len(delivery_ids))
        db.drop_broken_connection()


async def _worker(url: ServerUrl, feed: _Feed, recorder: _Recorder, result: SendResult, timeout: float) -> None:
    """One connection, reused for job after job; reconnects after a disconnect or timeout."""
    smtp: aiosmtplib.SMTP | None = None
    try:
        while (job := feed.next(recorder)) is not None:
            if smtp is None or not smtp.is_connected:
                smtp = _client(url, timeout)
                try:
                    await smtp.connect()
                except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as error:
                    if _login_refused(error):
                        # our user or password is wrong: every try would fail the same way, so the
                        # job goes back untouched (no attempt charged) and no worker starts another
                        feed.untouched.append(job.delivery_id)
                        feed.login_refused = error
                        smtp = None
                        return
                    recorder.add(_Outcome(job, "retry", getattr(error, "code", None), f"connect: {error}"))
                    message = f"SMTP {url.redacted()}: {error}"
                    if message not in result.errors:
                        result.errors.append(message)
                    smtp = None
                    return  # the server is down or full: leave the rest to the other connections, or to later
                except Exception as error:  # a bug or an error no one foresaw: this connection only
                    log.exception("SMTP %s: unexpected error while connecting", url.redacted())
                    recorder.add(_Outcome(job, "retry", None, f"connect: unexpected {type(error).__name__}: {error}"))
                    result.errors.append(f"SMTP {url.redacted()}: unexpected {type(error).__name__}: {error}")
                    smtp = None
                    return
                result.connections += 1
            outcome = await _send_one(smtp, job)
            if outcome.status == "sent":
                crashpoints.hit("after-data-before-mark-sent")
            elif outcome.session_lost:
                smtp.close()  # the session's state is unknown: start a new one
                smtp = None
            recorder.add(outcome)
    finally:
        if smtp is not None and smtp.is_connected:
            await _say_goodbye(smtp)


def _needs_smtputf8(job: _Job) -> bool:
    """Whether the envelope or the header block has anything but ASCII (a customer `josé@…`):
    such mail can only go through a server that offers SMTPUTF8 (RFC 6531)."""
    head = job.raw[:job.raw.find(b"\r\n\r\n")]  # the header block only: no copy of the body per send
    return not (job.mail_from.isascii() and job.recipient.isascii() and head.isascii())


async def _send_one(smtp: aiosmtplib.SMTP, job: _Job) -> _Outcome:
    """One delivery's SMTP transaction and its outcome. Never raises: whatever goes wrong with
    one delivery is that delivery's outcome, and the other deliveries go on."""
    try:
        return await _transaction(smtp, job)
    except Exception as error:  # a bug or an error no one foresaw: this delivery fails, not the outbox
        log.exception("outbox %s to %s: unexpected error while sending", job.outbox_id, job.recipient)
        return _Outcome(job, "failed", None, f"unexpected {type(error).__name__}: {error}"[:500], session_lost=True)


async def _transaction(smtp: aiosmtplib.SMTP, job: _Job) -> _Outcome:
    # aiosmtplib encodes the envelope as UTF-8 with SMTPUTF8 and refuses it (SMTPNotSupported,
    # before MAIL FROM) when the server does not offer it; without it, a non-ASCII address
    # would raise UnicodeEncodeError
    options = ["SMTPUTF8"] if _needs_smtputf8(job) else []
    try:
        await smtp.sendmail(job.mail_from, [job.recipient], job.raw, mail_options=options)
    except aiosmtplib.SMTPNotSupported as error:
        if not options:
            raise
        return _Outcome(job, "failed", None,
                        f"the address {job.recipient} (or the mail's headers) is not plain ASCII, and the SMTP "
                        f"server does not offer SMTPUTF8 to carry it ({error}); not retried")
    except aiosmtplib.SMTPRecipientsRefused as error:
        [refusal] = error.recipients or [aiosmtplib.SMTPRecipientRefused(550, "refused", job.recipient)]
        status = "retry" if 400 <= refusal.code < 500 else "refused"
        return _Outcome(job, status, refusal.code, f"RCPT {refusal.code} {refusal.message}")
    except aiosmtplib.SMTPResponseException as error:
        status = "retry" if 400 <= error.code < 500 else "failed"
        stage = {aiosmtplib.SMTPSenderRefused: "MAIL", aiosmtplib.SMTPDataError: "DATA"}.get(type(error), "SMTP")
        return _Outcome(job, status, error.code, f"{stage} {error.code} {error.message}")
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as error:
        # disconnect or timeout, possibly after the final "." — retry; the same Message-ID goes again
        return _Outcome(job, "retry", None, f"{type(error).__name__}: {error}", session_lost=True)
    return _Outcome(job, "sent")


# -- what a person does: retry, cancel, bounces ---------------------------------------------------

def retry(ids: list[int] | None, now: datetime) -> int:
    """Queue again the recipients that failed (of every failed row, or of the given rows, where
    suppressed ones count too: naming a row overrides its cap). Recipients that got the mail are
    never sent it again. Returns how many outbox rows were queued."""
    statuses = DELIVERY_FAILURES + (("suppressed", PENDING) if ids else ())
    with write_transaction():
        query = Delivery.select(Delivery.id, Delivery.outbox).where(Delivery.status.in_(statuses))
        if ids:
            query = query.where(Delivery.outbox.in_(ids))
        rows = list(query)
        touched = {row.outbox_id for row in rows}
        # a row held back by a cap was never rendered: its recipients wait for the renderer, which
        # takes queued rows
        unrendered = {row_id for (row_id,) in Outbox.select(Outbox.id).where(
            Outbox.id.in_(sorted(touched)) & Outbox.context.is_null(False)).tuples()} if touched else set()
        for chunk in chunks([row.id for row in rows if row.outbox_id not in unrendered], 500):
            Delivery.update(status=PENDING, next_attempt_at=now, failed_at=None).where(Delivery.id.in_(chunk)).execute()
        for chunk in chunks([row.id for row in rows if row.outbox_id in unrendered], 500):
            Delivery.update(status=WAITING, next_attempt_at=now, failed_at=None).where(Delivery.id.in_(chunk)).execute()
        for chunk in chunks(sorted(unrendered), 500):
            Outbox.update(status=PENDING, next_attempt_at=now).where(Outbox.id.in_(chunk)).execute()
        settle(touched - unrendered, now)
    return len(touched)


def cancel(ids: list[int], now: datetime) -> int:
    """Stop sending the given rows: recipients not reached (pending, failed, suppressed) are
    cancelled, so `retry` leaves them alone. Returns rows changed."""
    with write_transaction():
        rows = list(Delivery.select(Delivery.id, Delivery.outbox)
                    .where(Delivery.outbox.in_(ids) & Delivery.status.in_((PENDING, "suppressed", "rendering") + DELIVERY_FAILURES)))
        for chunk in chunks([row.id for row in rows], 500):
            Delivery.update(status="cancelled", last_error="cancelled by an admin").where(Delivery.id.in_(chunk)).execute()
        touched = {row.outbox_id for row in rows}
        settle(touched, now)
    return len(touched)


def bounce_target(address: str, secret: bytes) -> tuple[Outbox, Delivery] | None:
    """The outbox row and delivery a VERP bounce address names, if it verifies; else None.

    For the bounce handler: a DSN's envelope recipient (or To:) is our VERP return path."""
    from escalate.mail import verp

    parsed = verp.parse(address)
    if parsed is None:
        return None
    outbox_id, index = parsed
    row = Outbox.get_or_none(Outbox.id == outbox_id)
    if row is None or not (0 <= index < len(row.recipients)):
        return None
    recipient = row.recipients[index]
    if not verp.verify(address, recipient, secret):
        return None
    delivery = Delivery.get_or_none((Delivery.outbox == row) & (Delivery.recipient == recipient))
    return (row, delivery) if delivery is not None else None


def record_bounce(address: str, secret: bytes, now: datetime, reason: str,
                  on_failed: Callable[[Outbox, datetime], None] | None = None) -> tuple[Outbox, Delivery] | None:
    """Mark the delivery a VERP bounce names as bounced (which blocks the address for a day).
    Returns what it names, or None for an address we did not mint. Joins the caller's transaction."""
    target = bounce_target(address, secret)
    if target is None:
        return None
    row, delivery = target
    with write_transaction():
        Delivery.update(status="bounced", failed_at=now, code=550, last_error=f"bounced: {reason}"[:2000]).where(
            Delivery.id == delivery.id).execute()
        settle([row.id], now, on_failed)
    return Outbox.get_by_id(row.id), Delivery.get_by_id(delivery.id)
