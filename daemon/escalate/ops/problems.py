"""Problems a person must fix before part of the daemon works again (the SMTP server refusing our
login): recorded in the database by the stage that meets one, so `escalate status` and the metrics
show it whichever process reads them, and cleared by that stage as soon as it works again.

Wall clock, not `--now`: they say when a process met the problem, like heartbeats.
"""

from __future__ import annotations

import logging

import peewee

from escalate.ops.heartbeat import wall_now
from escalate.store import db
from escalate.store.models import Problem

log = logging.getLogger(__name__)

SMTP_LOGIN = "smtp-login"


def report(name: str, detail: str) -> None:
    """Record (or refresh) a problem; best effort, so a database outage does not hide the cause."""
    now = wall_now()
    try:
        with db.write_transaction():
            (Problem.insert(name=name, detail=detail[:2000], since=now, seen_at=now)
             .on_conflict(conflict_target=[Problem.name], update={Problem.detail: detail[:2000], Problem.seen_at: now})
             .execute())
    except peewee.DatabaseError:
        log.warning("could not record the problem %s in the database: %s", name, detail)


def clear(name: str) -> None:
    """The stage works again. A read when there is nothing to clear, so a stage may call it after
    every success."""
    if not recorded(name):
        return
    try:
        with db.write_transaction():
            Problem.delete().where(Problem.name == name).execute()
    except peewee.DatabaseError:
        pass  # the next success tries again


def recorded(name: str) -> bool:
    try:
        return Problem.select().where(Problem.name == name).exists()
    except peewee.DatabaseError:
        return False


def listing() -> list[dict[str, str]]:
    from escalate.clock import iso

    return [{"name": p.name, "detail": p.detail, "since": iso(p.since), "seen_at": iso(p.seen_at)}
            for p in Problem.select().order_by(Problem.name)]
