"""The daemon: open the database and rules, then ingest, evaluate and send — once, or on
schedules until SIGTERM.

Each stage runs on its own interval (the `schedule` library) and a failing stage is logged and
retried with back-off without stopping the others: an unreachable IMAP server does not stop
escalations that are already due, and an unreachable SMTP server loses nothing (the outbox keeps
it). SIGHUP reloads the rules; a broken file is reported and the last good rules stay in force.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime

import schedule

from . import clock, db, engine, outbox
from .config import ConfigError, Settings
from .ingest import IngestResult, ingest_folder
from .mailbox import Mailbox, MailboxUnavailable
from .rules.loader import RulesError, load_ruleset
from .rules.model import Ruleset
from .templates import Renderer

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
    return load_ruleset(settings.rules_path, template_names=renderer.names())


def open_app(settings: Settings) -> App:
    """Open rules, templates and database; raises RulesError/ConfigError for bad input."""
    renderer = Renderer(settings.templates_dir)
    ruleset = load_rules(settings, renderer)
    db.connect(settings.db_url)
    return App(settings, ruleset, renderer)


@dataclass
class CycleResult:
    ingest: IngestResult = field(default_factory=IngestResult)
    tick: engine.TickResult = field(default_factory=engine.TickResult)
    send: outbox.SendResult = field(default_factory=outbox.SendResult)


def ingest(app: App, now: datetime) -> IngestResult:
    if app.settings.imap is None:
        raise ConfigError("ESCALATE_IMAP_URL is not set: escalate needs the support mailbox (imap://user:pass@host/INBOX)")
    result = IngestResult()
    with Mailbox(app.settings.imap) as mailbox:
        for folder in app.settings.imap.folders:
            ingest_folder(mailbox, folder, app.ruleset, app.renderer, app.secret, now, result)
    return result


def tick(app: App, now: datetime) -> engine.TickResult:
    return engine.tick(app.ruleset, app.renderer, app.secret, now)


def send(app: App, now: datetime) -> outbox.SendResult:
    if app.settings.smtp is None:
        raise ConfigError("ESCALATE_SMTP_URL is not set: escalate needs an SMTP server to send escalations")
    return outbox.send_due(app.settings.smtp, now)


def run_once(app: App, now: datetime) -> CycleResult:
    """One full cycle: fetch new mail, evaluate due tickets, send what is queued."""
    app.secret  # fail before touching the mailbox when the secret is missing
    return CycleResult(ingest=ingest(app, now), tick=tick(app, now), send=send(app, now))


class Daemon:
    """`escalate run`: the stages on their schedules until SIGTERM/SIGINT."""

    def __init__(self, app: App):
        self.app = app
        self.stopping = False
        self.reload_requested = False
        self.scheduler = schedule.Scheduler()
        self._failures: dict[str, int] = {}
        self._retry_at: dict[str, float] = {}

    def request_stop(self, *_args) -> None:
        self.stopping = True

    def request_reload(self, *_args) -> None:
        self.reload_requested = True

    def reload_rules(self) -> None:
        self.reload_requested = False
        try:
            self.app.ruleset = load_rules(self.app.settings, self.app.renderer)
        except RulesError as error:
            log.error("rules reload failed; keeping the last good rules:\n%s", error)
            return
        log.info("rules reloaded from %s", self.app.settings.rules_path)

    def _stage(self, name: str, function) -> None:
        """Run one stage unless it is backing off; failures back off exponentially, capped."""
        if self.stopping or time.monotonic() < self._retry_at.get(name, 0.0):
            return
        try:
            result = function(self.app, clock.now())
        except (MailboxUnavailable, outbox.SmtpUnavailable, OSError) as error:
            failures = self._failures.get(name, 0) + 1
            self._failures[name] = failures
            delay = min(2.0 ** failures, MAX_BACKOFF_SECONDS)
            self._retry_at[name] = time.monotonic() + delay
            log.warning("%s failed (%s); retrying in %.0f s", name, error, delay)
            return
        except Exception:  # a bug in one stage must not stop the others; say so loudly
            log.exception("%s failed unexpectedly", name)
            return
        self._failures.pop(name, None)
        self._retry_at.pop(name, None)
        log.debug("%s: %s", name, result)

    def run(self) -> None:
        settings = self.app.settings
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)
        self.scheduler.every(settings.poll_seconds).seconds.do(self._stage, "ingest", ingest)
        self.scheduler.every(settings.tick_seconds).seconds.do(self._stage, "tick", tick)
        self.scheduler.every(settings.send_seconds).seconds.do(self._stage, "send", send)
        log.info("escalate running: %r", settings)
        self.scheduler.run_all()
        while not self.stopping:
            if self.reload_requested:
                self.reload_rules()
            self.scheduler.run_pending()
            idle = self.scheduler.idle_seconds
            time.sleep(max(0.0, min(idle if idle is not None else 1.0, 1.0)))
        log.info("escalate stopped")
