"""Several instances on one PostgreSQL: due tickets and outbox rows
are claimed so that each ticket is evaluated and each notification sent once, whatever dies.

Real parts only: Debian's PostgreSQL cluster, aiosmtpd on loopback, Dovecot for the ingest stage,
and `escalate` itself as subprocesses that are SIGKILLed, cut off and left without a database.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import peewee
import pytest
from escalate.clock import parse_time
from escalate.engine import tick as engine
from escalate.outbound import outbox, render
from escalate.outbound.templates import Renderer
from escalate.rules.loader import load_ruleset
from escalate.store import db
from escalate.store.models import Delivery, Escalation, Outbox, Ticket
from escalate.testing.loopback import Dovecot, Postgres, SmtpSink

from . import soak
from .daemon_process import wait_until
from .test_daemon import NotifySocket

T0 = parse_time("2026-11-02T09:00:00+00:00")
HOUR = timedelta(hours=1)
SECRET = "multi-instance-test-secret-0123456789abcdef"

# One notification per ticket: urgent tickets without a first response for 15 minutes go to tier 1,
# once (no repeats), so the sink must see exactly one distinct notification per ticket.
RULES = """\
version: 1
timezone: UTC
support_address: support@example.com
reference_prefix: T
ladder:
  group_mails_per_hour: 0  # hundreds of tickets escalate at once here: no ceiling on the group's mail
severities:
  urgent:
    keywords: [outage, down]
    first_response: 15m
    resolution: 4h
  normal:
    default: true
    first_response: 4h
    resolution: 2d
tiers:
  - level: 1
    name: Frontline
    group: tier1@example.com
    roster: [alice@example.com]
    lead: lead1@example.com
rules:
  - name: urgent-no-first-response
    description: Urgent tickets need a first response within 15 minutes.
    when:
      severity: urgent
      no_first_response_for: 15m
    then:
      escalate_to: 1
"""


@pytest.fixture
def pg_url(postgres: Postgres) -> str:
    return postgres.create_database()


@pytest.fixture
def instance_env(tmp_path: Path, pg_url: str, dovecot: Dovecot, smtp_sink: SmtpSink) -> dict[str, str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    return {**os.environ, "ESCALATE_DB_URL": pg_url, "ESCALATE_IMAP_URL": dovecot.url(),
            "ESCALATE_SMTP_URL": smtp_sink.url, "ESCALATE_RULES": str(rules), "ESCALATE_SECRET": SECRET}


def seed(url: str, count: int, first_due: datetime, spread: timedelta) -> list[str]:
    """`count` urgent tickets whose first-response rule fires at evenly spaced times from `first_due`
    over `spread`; returns their refs. Written directly: ingest is not what these tests are about."""
    db.connect(url)
    step = spread / max(count, 1)
    rows = []
    for i in range(count):
        fires = first_due + step * i
        created = fires - timedelta(minutes=15)
        rows.append({"subject": f"Outage {i}", "normalised_subject": f"outage {i}", "requester": f"c{i}@customer.example",
                     "status": "new", "severity": "urgent", "created_at": created, "updated_at": created,
                     "next_due_at": fires, "message_count": 1})
    with db.write_transaction():
        for start in range(0, count, 500):
            Ticket.insert_many(rows[start:start + 500]).execute()
        Ticket.update(ref=peewee.SQL("'T-' || \"id\"")).execute()
    refs = [ref for (ref,) in Ticket.select(Ticket.ref).tuples()]
    db.close()
    return refs


def notifications(sink: SmtpSink) -> tuple[Counter, dict[str, set[str]]]:
    """(copies per Message-ID, Message-IDs per ticket ref) of what the sink accepted."""
    copies: Counter = Counter()
    per_ticket: dict[str, set[str]] = {}
    for mail in sink.messages:
        message_id = mail.message["Message-ID"]
        copies[message_id] += 1
        per_ticket.setdefault(mail.message["X-Escalate-Ticket"], set()).add(message_id)
    return copies, per_ticket


def outbox_state(url: str) -> Counter:
    db.connect(url)
    try:
        return Counter(status for (status,) in Delivery.select(Delivery.status).tuples())
    finally:
        db.close()


def load_rules(tmp_path: Path):
    rules = tmp_path / "rules-inproc.yaml"
    rules.write_text(RULES, encoding="utf-8")
    renderer = Renderer(None)
    return load_ruleset(rules, template_names=renderer.names()), renderer


# -- the claims themselves, in process, on PostgreSQL ------------------------------------------------

def test_two_ticks_at_once_split_the_due_tickets_and_evaluate_each_once(pg_url, tmp_path):
    refs = seed(pg_url, 300, T0, timedelta(minutes=1))
    ruleset, renderer = load_rules(tmp_path)
    db.connect(pg_url)
    start = threading.Barrier(2)
    results: list[engine.TickResult] = []

    def instance() -> None:
        start.wait()
        try:
            results.append(engine.tick(ruleset, renderer, SECRET.encode(), T0 + HOUR, batch=50))
        finally:
            db.close()  # this thread's connection

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(results) == 2
    print(f"\nevaluated per instance: {[r.evaluated for r in results]}")
    # without SKIP LOCKED both would evaluate the same rows; the second would fail on the unique
    # escalation key and retry the ticket later ("failed")
    assert [r.failed for r in results] == [[], []]
    assert sum(r.evaluated for r in results) == len(refs)
    assert sum(r.notifications for r in results) == len(refs)
    assert Outbox.select().count() == len(refs) == Escalation.select().count()


def test_the_database_refuses_a_second_escalation_or_notification_for_one_step(pg_url, tmp_path):
    [ref] = seed(pg_url, 1, T0, timedelta(minutes=1))
    ruleset, renderer = load_rules(tmp_path)
    db.connect(pg_url)
    assert engine.tick(ruleset, renderer, SECRET.encode(), T0).notifications == 1
    row = Outbox.get()
    escalation = Escalation.get()
    # one row per step, by the database, not by code paths: whatever instance and interleaving tries it again
    with pytest.raises(peewee.IntegrityError), db.write_transaction():
        Outbox.create(ticket=row.ticket_id, kind="escalation", rule=row.rule, step=row.step, due_at=row.due_at,
                      message_id="<another@example.com>", mail_from="support@example.com", recipients=["x@example.com"],
                      subject="again", raw=b"again", next_attempt_at=T0, created_at=T0)
    with pytest.raises(peewee.IntegrityError), db.write_transaction():  # a second active ladder for the ticket
        Escalation.create(ticket=escalation.ticket_id, rule="another-rule", tier=2, started_at=T0, last_step_due_at=T0,
                          state="active")
    # the ticket due again (an incident or a reply touched it): evaluating it again queues nothing
    Ticket.update(next_due_at=T0).execute()
    assert engine.tick(ruleset, renderer, SECRET.encode(), T0 + timedelta(minutes=1)).notifications == 0
    assert Outbox.select().count() == 1


@pytest.mark.chaos
def test_a_tick_cut_from_postgresql_gives_up_the_batch_instead_of_failing_every_ticket(pg_url, tmp_path, monkeypatch, caplog):
    seed(pg_url, 20, T0, timedelta(minutes=1))
    ruleset, renderer = load_rules(tmp_path)
    db.connect(pg_url)
    evaluate = engine._evaluate_ticket

    def cut_on_the_fifth(ticket, *args):
        if ticket.ref == "T-5":  # the server ends this session mid-batch (a restart, pg_terminate_backend)
            db.database.obj.execute_sql("SELECT pg_terminate_backend(pg_backend_pid())")
        return evaluate(ticket, *args)

    monkeypatch.setattr(engine, "_evaluate_ticket", cut_on_the_fifth)
    with pytest.raises(peewee.OperationalError):
        engine.tick(ruleset, renderer, SECRET.encode(), T0 + HOUR)
    assert "evaluating" not in caplog.text  # no ticket blamed (and put off for 5 minutes) for the outage
    db.close()
    monkeypatch.setattr(engine, "_evaluate_ticket", evaluate)
    # the batch rolled back whole; on a new connection the next tick does it all
    assert Outbox.select().count() == 0
    assert engine.tick(ruleset, renderer, SECRET.encode(), T0 + HOUR).notifications == 20


def test_outbox_claims_are_disjoint_and_an_expired_lease_is_claimed_again(pg_url, tmp_path):
    seed(pg_url, 20, T0, timedelta(minutes=1))
    ruleset, renderer = load_rules(tmp_path)
    db.connect(pg_url)
    engine.tick(ruleset, renderer, SECRET.encode(), T0 + HOUR)
    render.render_pending(renderer, T0 + HOUR)  # the sender renders what the tick decided, then claims
    first = outbox.claim(T0 + HOUR, 12, owner="a", lease_seconds=60)
    second = outbox.claim(T0 + HOUR, 12, owner="b", lease_seconds=60)
    assert len(first) == 12 and len(second) == 8
    assert not {j.delivery_id for j in first} & {j.delivery_id for j in second}
    assert outbox.claim(T0 + HOUR, 12, owner="c", lease_seconds=60) == []  # every row is held
    # a's process died: once its lease has run out (on the database's clock) c takes its rows
    Delivery.update(lease_until=Delivery.lease_until - timedelta(seconds=61)).where(Delivery.lease_owner == "a").execute()
    third = outbox.claim(T0 + HOUR, 20, owner="c", lease_seconds=60)
    assert {j.delivery_id for j in third} == {j.delivery_id for j in first}
    # a, late, records a failure for a row c now holds: it must not put it back in the queue
    recorder = outbox._Recorder(T0 + HOUR, outbox.SendResult(), None, owner="a")
    recorder._write([outbox._Outcome(first[0], "retry", None, "timeout")])
    taken = Delivery.get_by_id(first[0].delivery_id)
    assert (taken.lease_owner, taken.attempts, taken.last_error) == ("c", 0, None)


# -- three instances, tickets coming due over a simulated hour, one SIGKILLed every few seconds -----

KILLS = soak.scaled(3)  # SIGKILLs over the simulated hour (ESCALATE_SOAK_SCALE=4: 12, over 1,000 tickets)
HOUR_TICKETS = soak.scaled(250)  # evenly due over the hour
KILL_EVERY = 2.5  # real seconds between SIGKILLs (jittered): the hour passes in about KILLS × this
LEASE_SECONDS = "3"  # a killed sender's claims come back after this (ESCALATE_SEND_LEASE_SECONDS)
DRAIN_SECONDS = 120.0  # bound on the catch-up after the hour


class Instance(threading.Thread):
    """One instance as a loop of `escalate run --once --now <simulated now>` processes: a process
    that is killed is followed by the next, like a daemon restarted by systemd."""

    def __init__(self, name: str, env: dict[str, str], clock, stop: threading.Event):
        super().__init__(name=name, daemon=True)
        self.env, self.clock, self.stop = env, clock, stop
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0  # when the current process was started
        self.lock = threading.Lock()
        self.runs: list[dict] = []  # the JSON of each run that finished
        self.killed = 0
        self.landed = 0
        self.failed: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "escalate", "run", "--once", "--json", "--now", self.clock().isoformat()],
                    env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                self.started_at = time.monotonic()
            out, err = self.process.communicate()
            if self.process.returncode == 0:
                self.runs.append(json.loads(out))
            elif self.process.returncode != -signal.SIGKILL:
                last = err.decode(errors="replace").strip().splitlines()[-3:]
                self.failed.append(f"exit {self.process.returncode}: {' / '.join(last)}")

    def kill(self, database_port: int | None = None) -> bool:
        """SIGKILL the running process: with `database_port`, only one at work (connected to the
        database there, past starting Python), counted in `self.landed`."""
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                return False
            at_work = database_port is not None and connected_to(self.process.pid, database_port)
            if database_port is not None and not at_work:
                return False
            self.process.kill()
            self.killed += 1
            self.landed += at_work
            return True


def connected_to(pid: int, port: int) -> bool:
    """Whether process `pid` has a TCP connection open to `port` on this machine (from /proc)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            sockets.add(target[8:-1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in sockets:
                return True
    return False


def kill_one(instances: list[Instance], database_port: int, patience: float = 5.0) -> None:
    """SIGKILL a process at work, the one that has run longest; after `patience` seconds without one at
    work (a busy machine), any running process (not counted as landed)."""
    deadline = time.monotonic() + patience
    while not any(instance.kill(database_port if time.monotonic() < deadline else None)
                  for instance in sorted(instances, key=lambda i: i.started_at)):
        time.sleep(0.02)  # each is between two processes, or starting one


@pytest.mark.chaos
def test_three_instances_one_killed_every_few_seconds_send_each_notification_once(
        instance_env, pg_url, smtp_sink: SmtpSink, tmp_path):
    refs = seed(pg_url, HOUR_TICKETS, T0, HOUR)
    instance_env["ESCALATE_SEND_LEASE_SECONDS"] = LEASE_SECONDS
    # One cycle before the three start: two first polls of a folder at once both insert its
    # FolderState and one fails on the unique key (ingest.py, get-or-create; the folder locks of
    # folderlock.py serialise them). Not what this test is about.
    subprocess.run([sys.executable, "-m", "escalate", "run", "--once", "--now", (T0 - HOUR).isoformat()],
                   env=instance_env, check=True, capture_output=True, timeout=120)
    speed = HOUR / timedelta(seconds=(KILLS + 0.5) * KILL_EVERY)  # simulated seconds per real second
    started = time.monotonic()
    end = T0 + HOUR + timedelta(minutes=1)

    def clock() -> datetime:
        return min(T0 + timedelta(seconds=(time.monotonic() - started) * speed), end)

    stop = threading.Event()
    instances = [Instance(f"instance-{n}", instance_env, clock, stop) for n in range(3)]
    for instance in instances:
        instance.start()
    rng = random.Random(9)
    try:
        for _ in range(KILLS):  # over the simulated hour: a SIGKILL every KILL_EVERY seconds, at random phases
            time.sleep(KILL_EVERY * rng.uniform(0.75, 1.25))
            kill_one(instances, urlsplit(pg_url).port or 5432)
        kills = sum(instance.killed for instance in instances)
        landed = sum(instance.landed for instance in instances)
        wait_until("the end of the simulated hour", lambda: clock() >= end)
        # the last tickets come due; the lease of the last kill runs out
        wait_until(f"{HOUR_TICKETS} tickets told, nothing left queued", lambda: len(notifications(smtp_sink)[1]) >= HOUR_TICKETS
                        and outbox_state(pg_url)["queued"] == 0, timeout=DRAIN_SECONDS, interval=0.2)
    finally:
        stop.set()
        for instance in instances:
            instance.kill()  # never leave a process behind (nothing is due or queued by now when it passed)
            instance.join(timeout=30)
    copies, per_ticket = notifications(smtp_sink)
    duplicates = sum(copies.values()) - len(copies)
    evaluated = [sum(run["evaluated"] for run in i.runs) for i in instances]
    sent = [sum(run["sent"] for run in i.runs) for i in instances]
    runs = sum(len(i.runs) for i in instances)
    print(f"\nthree instances: {kills} SIGKILLs ({landed} of a process at work), {runs} finished runs; evaluated per instance "
          f"{evaluated}, sent per instance {sent}; sink: {sum(copies.values())} mails, {len(copies)} distinct, "
          f"{duplicates} duplicates (kill between SMTP accept and recording)")
    assert [i.failed for i in instances] == [[], [], []], "a run failed on its own (not killed)"
    assert kills == KILLS and landed >= max(1, KILLS * 2 // 3), f"{landed} of {kills} kills hit a process at work"
    assert set(per_ticket) == set(refs)  # every ticket told, nothing else sent
    assert all(len(ids) == 1 for ids in per_ticket.values()), "a ticket got two different notifications"
    assert len(copies) == HOUR_TICKETS
    # a duplicate is the same mail again (same Message-ID, counted above), and only a kill makes one:
    # at most the sends in flight plus the outcomes not yet written, per kill
    assert duplicates <= kills * 2 * outbox.CONNECTIONS
    # (on a busy machine a run takes seconds, and a kill can cost an instance its share of the ticks)
    assert sum(1 for e, s in zip(evaluated, sent) if e or s) >= 2, "the instances did not share the work"
    assert outbox_state(pg_url) == {"sent": HOUR_TICKETS}


# -- PostgreSQL crashes mid-run ------------------------------------------------------------------

PG_TICKETS = soak.scaled(150)  # due at once; PostgreSQL stops as their first mail goes out
PG_TICKETS_AFTER = soak.scaled(50)  # more, written once it is back: work that only recovered instances can do
PG_DOWN_SECONDS = 1.0 * soak.SCALE  # before the restart; the stages fail within 0.2 s of it


class StatusLog(threading.Thread):
    """The STATUS= lines one daemon reports over sd_notify, read as they come (the socket queue is
    short, and the daemon drops what does not fit)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.socket = NotifySocket()
        self.path = self.socket.path
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.done = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.done.is_set():
            fields = [f for _at, f in self.socket.collect(0.2)]
            if "READY=1" in fields:
                self.ready.set()
            self.lines += [f[len("STATUS="):] for f in fields if f.startswith("STATUS=")]

    def close(self) -> None:
        self.done.set()
        self.join(timeout=5)
        self.socket.socket.close()

    def recovered(self) -> bool:
        """It reported a failing stage, and since then every stage has worked again."""
        lines = list(self.lines)
        return any("failing" in s for s in lines) and "failing" not in lines[-1] and "unavailable" not in lines[-1] \
            and "send ok" in lines[-1] and "tick ok" in lines[-1]


def start_daemon(env: dict[str, str], log: Path, notify: StatusLog) -> subprocess.Popen:
    fast = {"ESCALATE_POLL_SECONDS": "0.5", "ESCALATE_TICK_SECONDS": "0.2", "ESCALATE_SEND_SECONDS": "0.2",
            "NOTIFY_SOCKET": notify.path}
    with open(log, "ab") as handle:
        return subprocess.Popen([sys.executable, "-m", "escalate", "run"], env={**env, **fast},
                                stdout=subprocess.DEVNULL, stderr=handle)


def restart_cluster(postgres: Postgres) -> None:
    """Start the cluster again; another test run sharing it may have started it first."""
    deadline = time.monotonic() + 120
    while True:
        started = subprocess.run(["pg_ctlcluster", postgres.version, postgres.cluster, "start"],
                                 capture_output=True, text=True, timeout=120)
        status = subprocess.run(["pg_lsclusters", "-h", postgres.version, postgres.cluster], capture_output=True, text=True)
        if started.returncode == 0 or "online" in status.stdout:
            return
        assert time.monotonic() < deadline, f"PostgreSQL did not start again: {started.stderr}"
        time.sleep(0.5)


@pytest.mark.chaos
@pytest.mark.serial  # stops the cluster every test process shares
def test_postgresql_crash_mid_run_every_instance_recovers_nothing_lost_nothing_twice(
        instance_env, pg_url, postgres: Postgres, smtp_sink: SmtpSink, tmp_path):
    seed(pg_url, 0, T0, HOUR)  # the schema, before three daemons start on it
    instance_env["ESCALATE_NOW"] = (T0 + HOUR).isoformat()  # everything is due: ticks and sends overlap the crash
    statuses = [StatusLog() for _ in range(3)]
    daemons = [start_daemon(instance_env, tmp_path / f"daemon-{n}.log", statuses[n]) for n in range(3)]
    try:
        for status in statuses:  # all three running (a daemon that cannot open its database at start exits)
            assert status.ready.wait(timeout=60), "a daemon did not start"
        refs = seed(pg_url, PG_TICKETS, T0, timedelta(minutes=30))
        at_stop = len(smtp_sink.wait_for(PG_TICKETS // 15, timeout=120))  # mid-run
        subprocess.run(["pg_ctlcluster", postgres.version, postgres.cluster, "stop", "-m", "immediate"],
                       check=True, capture_output=True, timeout=60)
        stopped = time.monotonic()
        try:
            time.sleep(PG_DOWN_SECONDS)
            during = len(smtp_sink.messages)  # claimed mail goes on out; its outcomes are recorded later
        finally:
            restart_cluster(postgres)
        back = time.monotonic()
        refs = seed(pg_url, PG_TICKETS_AFTER, T0, timedelta(minutes=30))  # every ticket's ref, these too
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            copies, per_ticket = notifications(smtp_sink)
            if len(per_ticket) >= len(refs) and all(s.recovered() for s in statuses) and outbox_state(pg_url)["queued"] == 0:
                break
            time.sleep(0.2)
        done = time.monotonic()
        alive = [d.poll() is None for d in daemons]
        recovered = [(status.recovered(), status.lines[-3:]) for status in statuses]
    finally:
        for daemon in daemons:
            daemon.send_signal(signal.SIGTERM)
        for daemon in daemons:
            try:
                daemon.wait(timeout=15)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for status in statuses:
            status.close()
    copies, per_ticket = notifications(smtp_sink)
    print(f"\nPostgreSQL crash: stopped at {at_stop} mails, {during} when it came back {back - stopped:.1f} s later; "
          f"all done {done - back:.1f} s after that; sink {sum(copies.values())} mails, "
          f"{len(copies)} distinct; last status per instance: {[lines[-1:] for _ok, lines in recovered]}")
    assert alive == [True, True, True], "an instance exited when the database went away"
    # each instance noticed the outage and then evaluated, sent and polled again after it
    assert [ok for ok, _lines in recovered] == [True, True, True], recovered
    assert len(refs) == PG_TICKETS + PG_TICKETS_AFTER and set(per_ticket) == set(refs)
    assert len(copies) == len(refs) and sum(copies.values()) == len(refs), "lost or duplicated notifications"
    assert outbox_state(pg_url) == {"sent": len(refs)}


# -- a worker cut from the database while it holds claimed rows ------------------------------------

class BlackHole:
    """A TCP port that completes handshakes and never answers (the SMTP greeting never comes);
    closing it resets the connections waiting in its queue."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.url = f"smtp://127.0.0.1:{self.socket.getsockname()[1]}"

    def close(self) -> None:
        self.socket.close()


@pytest.mark.chaos
def test_worker_cut_from_postgresql_holding_claims_another_sends_them_once_after_the_lease(
        instance_env, pg_url, postgres: Postgres, smtp_sink: SmtpSink, tmp_path):
    refs = seed(pg_url, 5, T0, timedelta(minutes=1))
    instance_env["ESCALATE_NOW"] = (T0 + HOUR).isoformat()
    instance_env["ESCALATE_SEND_LEASE_SECONDS"] = "2"  # b claims a's rows this long after a claimed them
    hole = BlackHole()
    sock_a, sock_b = StatusLog(), StatusLog()
    a = start_daemon({**instance_env, "ESCALATE_SMTP_URL": hole.url}, tmp_path / "a.log", sock_a)
    b = None
    try:
        db.connect(pg_url)
        deadline = time.monotonic() + 60
        while Delivery.select().where(Delivery.lease_owner.is_null(False)).count() < len(refs):
            assert time.monotonic() < deadline, "instance a never claimed the notifications"
            time.sleep(0.1)
        owner_a = {d.lease_owner for d in Delivery.select()}
        # cut a from the database while its SMTP sends hang: its claims are only a lease now
        name = pg_url.rsplit("/", 1)[1]
        db.close()  # ours too is called "escalate"; the next query opens a new one
        cut = postgres._psql(f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             f"WHERE datname = '{name}' AND application_name = 'escalate'")
        assert int(cut) >= 1
        b = start_daemon(instance_env, tmp_path / "b.log", sock_b)
        sent = smtp_sink.wait_for(len(refs), timeout=60)
        hole.close()  # a's sends fail now: it records retries for rows that are no longer its own
        deadline = time.monotonic() + 60
        while not any("to retry" in s for s in sock_a.lines):
            assert time.monotonic() < deadline, f"instance a never finished its send run: {sock_a.lines[-3:]}"
            time.sleep(0.2)
        rows = list(Delivery.select())
        assert a.poll() is None and b.poll() is None
    finally:
        db.close()
        for daemon in (a, b):
            if daemon is not None:
                daemon.send_signal(signal.SIGTERM)
                daemon.wait(timeout=15)
        sock_a.close()
        sock_b.close()
        hole.close()
    print(f"\nworker cut: a={owner_a} cut; sink {len(smtp_sink.messages)} mails; a's statuses {sock_a.lines[-2:]}")
    assert len(owner_a) == 1 and None not in owner_a
    assert len(sent) == len(refs) == len(smtp_sink.messages)
    assert {m.message["X-Escalate-Ticket"] for m in sent} == set(refs)
    # a's late "retry" did not put them back in the queue: sent once, by b, and stays so
    assert {(d.status, d.lease_owner) for d in rows} == {("sent", None)}
