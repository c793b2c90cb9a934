"""Heartbeats: each daemon says every few seconds that it is alive and which folders it holds, so
`escalate status` can list the instances sharing a database.

A row is `running` while its heartbeat is fresh, `stopped` after a clean stop (SIGTERM), and
`lost` when its heartbeat is older than LOST_AFTER_SECONDS (killed, host gone, cut off from the
database). Stopped and lost rows are pruned after PRUNE_AFTER by any instance's heartbeat.

Heartbeats use each host's wall clock, never `--now`/ESCALATE_NOW: they say when a process was
last seen, not where the simulated time is. Hosts' clocks must agree to within a few seconds
(NTP), well inside LOST_AFTER_SECONDS.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import peewee

from escalate import __version__
from escalate.clock import iso
from escalate.ops.instance import identity
from escalate.store import db
from escalate.store.models import Instance

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 3.0
LOST_AFTER_SECONDS = 5 * HEARTBEAT_SECONDS
PRUNE_AFTER = timedelta(hours=24)


def wall_now() -> datetime:
    return datetime.now(timezone.utc)


def beat(name: str, holds: list[str], started_at: datetime, now: datetime) -> None:
    """Insert or refresh this instance's row (one statement, safe against a concurrent prune)."""
    Instance.insert(name=name, host=socket.gethostname(), pid=os.getpid(), version=__version__,
                    started_at=started_at, heartbeat_at=now, stopped_at=None, holds=holds) \
        .on_conflict(conflict_target=[Instance.name],
                     update={Instance.heartbeat_at: now, Instance.holds: holds, Instance.stopped_at: None}) \
        .execute()


def mark_stopped(name: str, now: datetime) -> None:
    Instance.update(stopped_at=now, heartbeat_at=now, holds=[]).where(Instance.name == name).execute()


def prune(now: datetime) -> int:
    """Forget instances stopped or lost for longer than PRUNE_AFTER."""
    return Instance.delete().where(Instance.heartbeat_at < now - PRUNE_AFTER).execute()


def state(instance: Instance, now: datetime) -> str:
    if instance.stopped_at is not None:
        return "stopped"
    if (now - instance.heartbeat_at).total_seconds() > LOST_AFTER_SECONDS:
        return "lost"
    return "running"


def listing(now: datetime) -> list[dict[str, Any]]:
    """Every known instance, running ones first; only a running instance holds anything."""
    rows = []
    for instance in Instance.select().order_by(Instance.started_at, Instance.name):
        current = state(instance, now)
        rows.append({"name": instance.name, "host": instance.host, "pid": instance.pid, "version": instance.version,
                     "state": current, "started_at": iso(instance.started_at),
                     "heartbeat_at": iso(instance.heartbeat_at),
                     "heartbeat_age_seconds": round(max((now - instance.heartbeat_at).total_seconds(), 0.0), 1),
                     "holds": instance.holds if current == "running" else []})
    order = {"running": 0, "lost": 1, "stopped": 2}
    return sorted(rows, key=lambda row: order[row["state"]])


class Heartbeat(threading.Thread):
    """The daemon's heartbeat stage: its own thread on the wall clock, so a busy or failing stage
    never makes a live instance look lost. Database errors are logged and the next beat retried."""

    def __init__(self, holds: Callable[[], list[str]], *, interval: float = HEARTBEAT_SECONDS):
        super().__init__(name="escalate-heartbeat", daemon=True)
        self.holds = holds
        self.interval = interval
        self.name_ = identity()
        self.started_at = wall_now()
        self._stop_requested = threading.Event()
        self._failing = False

    def beat_once(self) -> None:
        try:
            now = wall_now()
            beat(self.name_, self.holds(), self.started_at, now)
            prune(now)
            if self._failing:
                log.info("heartbeat recorded again")
            self._failing = False
        except peewee.PeeweeException as error:
            if not self._failing:
                log.warning("heartbeat not recorded (%s); retrying every %.0f s", error, self.interval)
            self._failing = True
            db.close()  # this thread's connection may be broken (database restarted): the next beat opens a new one

    def run(self) -> None:
        try:
            while not self._stop_requested.wait(self.interval):
                self.beat_once()
        finally:
            db.close()

    def stop(self) -> None:
        """Stop beating and record a clean stop."""
        self._stop_requested.set()
        if self.is_alive():
            self.join(timeout=2.0)  # a beat in progress; the stop must stay within systemd's timeout
        try:
            mark_stopped(self.name_, wall_now())
        except peewee.PeeweeException as error:
            log.warning("could not record the stop (%s); the instance will show as lost", error)
        finally:
            db.close()
