"""The daemon: open the database and rules, then ingest, evaluate and send — once, or on
schedules until SIGTERM.

Each stage runs in its own thread, woken on its own interval by the `schedule` library, and a
failing stage is logged and retried with back-off without stopping the others: an unreachable
IMAP server does not stop escalations that are already due, a slow SMTP server does not delay
them, and an unreachable one loses nothing (the outbox keeps it). SIGHUP reloads the rules; a
broken file is reported and the last good rules stay in force.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import peewee
import schedule

from escalate import __version__, clock
from escalate.config import ConfigError, Settings, redact_url
from escalate.engine import digest
from escalate.engine import tick as engine
from escalate.ingest import attachments
from escalate.ingest.mailbox import MailboxUnavailable
from escalate.ingest.pipeline import IngestResult
from escalate.ingest.poller import Poller
from escalate.ops import logs
from escalate.ops.heartbeat import Heartbeat
from escalate.ops.metrics import Metrics
from escalate.ops.sdnotify import Notifier, watchdog_interval
from escalate.outbound import chatsend, notify, outbox
from escalate.outbound.templates import Renderer
from escalate.rules.loader import RulesError, load_ruleset
from escalate.rules.model import Ruleset
from escalate.store import db

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 300.0


@dataclass
class App:
    """Everything a cycle needs, opened once: settings, rules, templates, database."""

    settings: Settings
    ruleset: Ruleset
    renderer: Renderer

    @property
    def secret(self) -> bytes:
        return self.settings.require_secret()


def load_rules(settings: Settings, renderer: Renderer) -> Ruleset:
    """The rules, whose `timezone` is from then on the one times are shown in (mail, views)."""
    ruleset = load_ruleset(settings.rules_path, template_names=renderer.names())
    clock.set_display_zone(ruleset.timezone)
    return ruleset


def open_app(settings: Settings, *, create: bool = True) -> App:
    """Open rules, templates and database; raises RulesError/ConfigError for bad input, and
    DatabaseMissing for a database that does not exist unless `create`."""
    renderer = Renderer(settings.templates_dir)
    ruleset = load_rules(settings, renderer)
    db.connect(settings.db_url, create=create)
    attachments.keep_private(settings)
    return App(settings, ruleset, renderer)


@dataclass
class CycleResult:
    ingest: IngestResult = field(default_factory=IngestResult)
    tick: engine.TickResult = field(default_factory=engine.TickResult)
    send: outbox.SendResult = field(default_factory=outbox.SendResult)
    send_error: outbox.SmtpUnavailable | None = None  # the SMTP server was down or refused the login
    chat: outbox.SendResult = field(default_factory=outbox.SendResult)


def ingest(app: App, now: datetime, *, poller: Poller | None = None,
           keep_waiting: Callable[[], bool] | None = None) -> IngestResult:
    """Drain the due folders (poller.py). The daemon passes its own poller, which keeps the IMAP
    connection and waits in IDLE for about a poll interval while `keep_waiting()` holds."""
    if app.settings.imap is None:
        raise ConfigError("ESCALATE_IMAP_URL is not set: escalate needs the support mailbox (imap://user:pass@host/INBOX)")
    return (poller or Poller()).run(app, now, keep_waiting=keep_waiting)


def tick(app: App, now: datetime, *, budget: float | None = None) -> engine.TickResult:
    """Evaluate the due tickets, then queue the informed lists' daily digest when its time has come
    (digest.py: checked every tick on the daemon's clock, so `--now` reaches it; once per day).
    `budget`: the daemon's tick leaves what is still due after it to the next tick."""
    result = engine.tick(app.ruleset, app.renderer, app.secret, now, budget=budget)
    result.digests = len(digest.queue_due(app.ruleset, app.renderer, app.secret, now))
    return result


def send(app: App, now: datetime) -> outbox.SendResult:
    if app.settings.smtp is None:
        raise ConfigError("ESCALATE_SMTP_URL is not set: escalate needs an SMTP server to send escalations")
    # a notification that fails permanently is told to the tier's lead, once (notify.lead_notifier)
    result = outbox.send_due(app.settings.smtp, now,
                             on_failed=notify.lead_notifier(app.ruleset, app.renderer, app.secret), renderer=app.renderer,
                             lease_seconds=app.settings.send_lease_seconds)
    if result.sent or result.retrying or result.failed:
        logs.event(log, "mail-sent", sent=result.sent, retrying=result.retrying, failed=result.failed)
    return result


def send_chat(app: App, now: datetime) -> outbox.SendResult:
    """Post what is queued for chat channels (chatsend.py); its own stage, so neither mail nor
    chat trouble holds up the other."""
    return chatsend.send_due(now, on_failed=notify.lead_notifier(app.ruleset, app.renderer, app.secret))


def run_once(app: App, now: datetime) -> CycleResult:
    """One full cycle: fetch new mail, evaluate due tickets, send what is queued (mail, then chat
    posts, which go even when the SMTP server is down)."""
    app.secret  # noqa: B018 -- fail before touching the mailbox when the secret is missing
    cycle = CycleResult(ingest=ingest(app, now), tick=tick(app, now))
    try:
        cycle.send = send(app, now)
    except outbox.SmtpUnavailable as error:  # what was ingested and decided still gets reported
        cycle.send, cycle.send_error = error.result, error
    finally:
        cycle.chat = send_chat(app, now)
    return cycle


class Stage(threading.Thread):
    """One stage (ingest, tick or send) in its own thread, so a slow SMTP server cannot delay
    escalation decisions (a slow SMTP server never delays a tick).
    The scheduler wakes it; a wake-up while it is busy is coalesced.
    Failures back off exponentially, capped, and never end the thread."""

    def __init__(self, name: str, function: Callable[[App, datetime], Any], daemon: Daemon):
        super().__init__(name=f"escalate-{name}", daemon=True)
        self.stage = name
        self.function = function
        self.owner = daemon
        self.wake = threading.Event()
        self.started_at: float | None = None  # monotonic start of the run in progress
        self.failures = 0
        self.retry_at = 0.0
        self.last_result: Any = None
        self.last_error: str | None = None
        # for the log: what is down ("imap", "smtp", "database", "stage"), since when, how many runs failed
        self.outage: str | None = None
        self.outage_since = 0.0
        self.outage_failures = 0

    def trigger(self) -> None:
        self.wake.set()

    def busy_for(self) -> float:
        started = self.started_at
        return time.monotonic() - started if started is not None else 0.0

    def run(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            if self.owner.stopping:
                return
            if time.monotonic() < self.retry_at:
                continue
            self.started_at = time.monotonic()
            try:
                self.last_result = self.function(self.owner.app, clock.now())
            except (MailboxUnavailable, outbox.SmtpUnavailable, OSError, peewee.OperationalError) as error:
                if isinstance(error, outbox.SmtpUnavailable):
                    self.owner.count_sends(error.result)  # what the failed run did record still counts
                self._failed(str(error), _outage_of(error))
            except Exception as error:  # a bug in one stage must not stop the others; say so loudly
                log.exception("%s failed unexpectedly", self.stage)
                self._failed(f"{type(error).__name__}: {error}", "stage")
            else:
                self._log_recovery(self.last_result)
                self.failures, self.retry_at, self.last_error = 0, 0.0, None
                self.owner.stage_done(self, self.last_result, time.monotonic() - self.started_at)
            finally:
                self.started_at = None
                db.close()  # this thread's connection; the next run opens a fresh one

    def _log_recovery(self, result: Any) -> None:
        """Say an outage is over once a run proves it: for SMTP, a run that connected (a run with
        nothing due, while the failed mail waits for its retry, tried no server)."""
        if self.outage is None or (self.outage == "smtp" and not getattr(result, "connections", 0)):
            return
        logs.event(log, f"{self.outage}-recovered" if self.outage != "stage" else "stage-recovered", stage=self.stage,
                   failures=self.outage_failures, down_seconds=round(time.monotonic() - self.outage_since, 1))
        self.outage, self.outage_failures = None, 0

    def _failed(self, error: str, outage: str) -> None:
        if self.outage is None:
            self.outage_since = time.monotonic()
        self.outage = outage
        self.outage_failures += 1
        self.failures += 1
        delay = min(2.0 ** self.failures, MAX_BACKOFF_SECONDS)
        self.retry_at = time.monotonic() + delay
        self.last_error = error
        # "imap-unavailable", "smtp-unavailable", …: the first of an outage and each retry after it
        logs.event(log, f"{outage}-unavailable" if outage != "stage" else "stage-failed", level=logging.WARNING,
                   stage=self.stage, error=error, failures=self.outage_failures, retry_in=delay)
        self.owner.stage_failed(self, error)


def _outage_of(error: Exception) -> str:
    """What a stage's failure says is down: the mailbox, the SMTP server, the database."""
    if isinstance(error, MailboxUnavailable):
        return "imap"
    if isinstance(error, outbox.SmtpUnavailable):
        return "smtp"
    if isinstance(error, peewee.OperationalError):
        return "database"
    return "stage"


RULES_CHECK_SECONDS = 2.0


def _file_stamp(path) -> tuple[int, int] | None:
    """(mtime in ns, size) of a file, or None when it cannot be read."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


class Daemon:
    """`escalate run`: ingest, tick and send on their schedules until SIGTERM/SIGINT.

    systemd hears READY=1 once the database, rules and instance lock are good, WATCHDOG=1 at
    half of WatchdogSec while no stage has been stuck longer than `stuck_seconds` (so a hung
    loop is restarted), STATUS= lines, and STOPPING=1.
    """

    def __init__(self, app: App, *, notifier: Notifier | None = None, metrics: Metrics | None = None):
        self.app = app
        self.notifier = notifier or Notifier()
        self.metrics = metrics or Metrics()
        self.stuck_seconds = app.settings.stuck_seconds
        self.stopping = False
        self.reload_requested = False
        self.scheduler = schedule.Scheduler()
        self.stages = {name: Stage(name, function, self) for name, function in
                       (("ingest", self._ingest), ("tick", self._tick), ("send", send), ("chat", send_chat))}
        self._poller = Poller()
        # its own thread on the wall clock: says which folders this instance holds (heartbeat.py)
        self.heartbeat = Heartbeat(self._poller.held)
        self._status: dict[str, str] = {}
        self._rules_stamp = _file_stamp(app.settings.rules_path)  # a changed rules file reloads like SIGHUP
        self._rules_checked = time.monotonic()

    def _tick(self, app: App, now: datetime) -> engine.TickResult:
        result = tick(app, now, budget=engine.DAEMON_TICK_BUDGET)
        if result.more_due:  # a backlog: the next batches right after this tick, the sender meanwhile
            self.stages["tick"].trigger()
            self.stages["send"].trigger()
        return result

    def _ingest(self, app: App, now: datetime) -> IngestResult:
        # the ingest thread keeps its connection and IDLEs until the next wake-up or a stop
        return ingest(app, now, poller=self._poller, keep_waiting=lambda: not self.stopping)

    def request_stop(self, *_args) -> None:
        self.stopping = True

    def request_reload(self, *_args) -> None:
        self.reload_requested = True

    def rules_file_changed(self) -> bool:
        """Whether rules.yaml changed on disk since it was last loaded (checked every couple of seconds)."""
        if time.monotonic() - self._rules_checked < RULES_CHECK_SECONDS:
            return False
        self._rules_checked = time.monotonic()
        return _file_stamp(self.app.settings.rules_path) != self._rules_stamp

    def reload_rules(self) -> None:
        self.reload_requested = False
        # remember this version even if it is bad: it is reported once, not on every check
        self._rules_stamp = _file_stamp(self.app.settings.rules_path)
        try:
            self.app.ruleset = load_rules(self.app.settings, self.app.renderer)
        except RulesError as error:
            logs.event(log, "rules-reload-failed", level=logging.ERROR, path=str(self.app.settings.rules_path),
                       error=str(error), keeping="the last good rules")
            self.notifier.status(f"rules reload failed, running on the last good rules: {error.issues[0] if error.issues else error}")
            return
        ruleset = self.app.ruleset
        logs.event(log, "rules-reloaded", path=str(self.app.settings.rules_path), rules=len(ruleset.rules),
                   tiers=len(ruleset.tiers))

    def stage_done(self, stage: Stage, result: Any, seconds: float) -> None:
        metrics = self.metrics
        metrics.stage_succeeded(stage.stage)
        if stage.stage == "ingest":
            metrics.imap_up.set(1)
            for outcome, count in result.outcomes.items():
                metrics.ingested.labels(outcome).inc(count)
            self._status["ingest"] = f"ingest ok ({sum(result.outcomes.values())} new)"
        elif stage.stage == "tick":
            metrics.tick_seconds.observe(seconds)
            metrics.notifications_queued.inc(result.notifications)
            self._status["tick"] = f"tick ok ({result.evaluated} due, {result.notifications} queued)"
        elif stage.stage == "send":
            self.count_sends(result)
            self._status["send"] = f"send ok ({result.sent} sent)" + (f", {result.retrying} to retry" if result.retrying else "")
        elif stage.stage == "chat":
            metrics.chat_posts.labels("sent").inc(result.sent)
            metrics.chat_posts.labels("retry").inc(result.retrying)
            metrics.chat_posts.labels("failed").inc(result.failed)
            if result.sent or result.retrying or result.failed:
                self._status["chat"] = (f"chat ok ({result.sent} posted" + (f", {result.retrying} to retry" if result.retrying
                                                                              else "") + ")")
            else:  # nothing to post (as for everyone without chat): no word, and a failure before is over
                self._status.pop("chat", None)
        self.notifier.status("; ".join(self._status[k] for k in ("ingest", "tick", "send", "chat") if k in self._status))

    def count_sends(self, result: outbox.SendResult) -> None:
        metrics = self.metrics
        metrics.sent.inc(result.sent)
        if result.retrying:
            metrics.send_failures.labels("retry").inc(result.retrying)
        if result.failed:  # refused, undeliverable (no SMTPUTF8), or an unexpected error in one delivery
            metrics.send_failures.labels("permanent").inc(result.failed)

    def stage_failed(self, stage: Stage, error: str) -> None:
        if stage.stage == "ingest":
            self.metrics.imap_up.set(0)
            self._status["ingest"] = "IMAP unavailable"
        elif stage.stage == "send" and error:
            self._status["send"] = f"send failing: {error[:200]}"  # e.g. the SMTP login refused: what to fix
        else:
            self._status[stage.stage] = f"{stage.stage} failing"
        self.notifier.status("; ".join(self._status.values()))

    def healthy(self) -> bool:
        """False when a stage has been stuck in one run for longer than `stuck_seconds`."""
        return all(stage.busy_for() <= self.stuck_seconds for stage in self.stages.values())

    def run(self) -> None:
        settings = self.app.settings
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        intervals = {"ingest": settings.poll_seconds, "tick": settings.tick_seconds, "send": settings.send_seconds,
                     "chat": settings.send_seconds}
        for name, stage in self.stages.items():
            self.scheduler.every(intervals[name]).seconds.do(stage.trigger)
            stage.start()
        watchdog = watchdog_interval()
        if watchdog is not None:
            self.scheduler.every(watchdog).seconds.do(self._watchdog)
        if settings.metrics_address:
            host, port = self.metrics.serve(settings.metrics_address)
            logs.event(log, "metrics-serving", url=f"http://{host}:{port}/metrics")
        self.heartbeat.beat_once()  # listed in `escalate status` from the start
        self.heartbeat.start()
        logs.event(log, "started", version=__version__, pid=os.getpid(), rules=str(settings.rules_path),
                   db=redact_url(settings.db_url), imap=[account.redacted() for account in settings.mailboxes],
                   smtp=settings.smtp.redacted() if settings.smtp else None, poll_seconds=settings.poll_seconds,
                   tick_seconds=settings.tick_seconds, send_seconds=settings.send_seconds)
        self.notifier.ready(f"running; rules {settings.rules_path}")
        self.scheduler.run_all()
        while not self.stopping:
            if self.reload_requested or self.rules_file_changed():
                self.reload_rules()
            self.scheduler.run_pending()
            idle = self.scheduler.idle_seconds
            time.sleep(max(0.0, min(idle if idle is not None else 0.2, 0.2)))
        self._stop()

    def _watchdog(self) -> None:
        if self.healthy():
            self.notifier.watchdog()
        else:
            stuck = [f"{s.stage} for {s.busy_for():.0f} s" for s in self.stages.values() if s.busy_for() > self.stuck_seconds]
            log.error("not telling the watchdog: stuck in %s", ", ".join(stuck))

    def _stop(self) -> None:
        """Let in-flight work finish (bounded), then leave: exit 0 within the stop timeout."""
        self.notifier.stopping()
        for stage in self.stages.values():
            stage.trigger()  # wake idle threads so they see `stopping` and return
        deadline = time.monotonic() + self.app.settings.stop_seconds
        for stage in self.stages.values():
            stage.join(timeout=max(0.0, deadline - time.monotonic()))
            if stage.is_alive():
                log.warning("%s still busy at shutdown after %.0f s; leaving it (its work is retried on restart)",
                            stage.stage, self.app.settings.stop_seconds)
        if not self.stages["ingest"].is_alive():
            self._poller.close()  # free the folders for the other instances now
        self.heartbeat.stop()
        self.metrics.close()
        self.notifier.close()
        logs.event(log, "stopped", pid=os.getpid())
