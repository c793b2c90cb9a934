"""Ingest under faults, bounded in time: random SIGKILLs of escalate, Dovecot killed mid-drain
or down at start, a silent network black hole during IDLE, IDLE renewal.
Network faults come from an in-test asyncio TCP proxy in front of the real Dovecot."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from escalate.clock import parse_time
from escalate.config import load_settings
from escalate.ingest import mailbox as mailbox_module
from escalate.ingest.mailbox import MailboxUnavailable
from escalate.ingest.poller import Poller
from escalate.ops.service import open_app
from escalate.store import db
from escalate.testing.loopback import Dovecot

from . import soak
from .daemon_process import DaemonProcess, wait_until
from .ingest_support import NOW, append_many, assert_ingest_invariants, run_once, scalar

pytestmark = pytest.mark.chaos  # kills at fault points or at random: `-m "not chaos"` skips it


class Proxy:
    """A TCP proxy on loopback in its own thread. Modes: "pass", "blackhole" (accept and forward
    nothing, like a dead path), "close" (reset every connection). Counts IDLE commands.
    `blackhole_in_idle`: the path goes dead once the server has said it is idling."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.mode = "pass"
        self.blackhole_in_idle = False
        self.idle_commands: list[float] = []
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.writers: list[asyncio.StreamWriter] = []

    def __enter__(self) -> Proxy:
        self.thread.start()
        self.ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        async def shutdown():
            self.server.close()
            for writer in self.writers:
                writer.close()
        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "close":
            writer.transport.abort()
            return
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, upstream_writer]

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, count_idle: bool) -> None:
            try:
                while data := await source.read(65536):
                    if count_idle and b" IDLE\r\n" in data:
                        self.idle_commands.append(time.monotonic())
                    if self.mode == "blackhole":
                        continue  # swallowed: neither side hears anything
                    sink.write(data)
                    await sink.drain()
                    if not count_idle and self.blackhole_in_idle and self.idle_commands and data.startswith(b"+"):
                        self.mode = "blackhole"  # the server's "+ idling" went through: now the path dies
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()

        await asyncio.gather(pump(reader, upstream_writer, True), pump(upstream_reader, writer, False))


def app_for(env: dict[str, str], **overrides: str):
    return open_app(load_settings({**env, **overrides}))


def mails(mail, count: int, prefix: str = "m") -> list[bytes]:
    return [mail(sender=f"{prefix}{n}@customer.example", subject=f"Issue {prefix}{n}", body="help",
                 message_id=f"{prefix}{n}@customer.example") for n in range(count)]


# --- Dovecot killed mid-drain -----------------------------------------------------------------

def test_dovecot_killed_mid_drain_loses_and_duplicates_nothing(env, dovecot: Dovecot, mail):
    # 600: with the next batch fetched while one is stored, a kill after a commit must still find
    # batches left to fetch (400 left the last one or two fetched already on a slow machine)
    append_many(dovecot, mails(mail, 600))
    app = app_for(env)
    path = env["ESCALATE_DB_URL"].removeprefix("sqlite:///")
    kills = []
    lifecycle = threading.Lock()  # the Dovecot handle is not thread-safe: kill and start take turns

    def killer() -> None:  # kill Dovecot whenever another 100 messages have been committed
        watcher = None
        deadline = time.monotonic() + 60
        while len(kills) < 3 and time.monotonic() < deadline:
            try:
                watcher = watcher or sqlite3.connect(path, timeout=5)
                stored = watcher.execute("SELECT count(*) FROM message").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
            if stored >= 100 * (len(kills) + 1):
                with lifecycle:
                    if dovecot.running:
                        dovecot.kill()
                        kills.append(stored)
            time.sleep(0.005)
        if watcher:
            watcher.close()

    thread = threading.Thread(target=killer)
    thread.start()
    poller, failures = Poller(), 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            poller.run(app, parse_time(NOW))
        except MailboxUnavailable:
            failures += 1
            with lifecycle:
                dovecot.start()
            continue
        if scalar(env, "SELECT count(*) FROM message") == 600:
            break
    thread.join()
    db.close()
    assert len(kills) >= 1 and failures >= 1
    assert_ingest_invariants(env, message_ids={f"m{n}@customer.example" for n in range(600)}, tickets=600)


# --- IMAP down when the daemon starts ----------------------------------------------------------

def test_daemon_keeps_running_while_imap_is_down_and_catches_up(env, dovecot: Dovecot, mail):
    dovecot.kill()  # down (killed: a graceful stop takes Dovecot a second)
    with DaemonProcess(env) as daemon:
        daemon.wait_for_event("imap-unavailable")  # its ingest failed, and it backs off …
        assert daemon.poll() is None, "the daemon exited while IMAP was down"
        dovecot.start()
        dovecot.append(mail(sender="carl@customer.example", subject="Back again", body="x", message_id="late@x.example"))
        # … for 2 s after a first failure (4 s after a second): then it reads the mail that waits
        wait_until("the mail is stored after IMAP came back", lambda: _stored(env, "late@x.example"))
        code, err = daemon.stop()
    assert code == 0, err
    # the outage is logged as such (a warning with the stage and the error), and its end
    assert "level=warning" in err and "msg=imap-unavailable stage=ingest" in err and "IMAP" in err
    assert "msg=imap-recovered" in err


def _stored(env: dict[str, str], message_id: str) -> bool:
    try:
        return scalar(env, "SELECT count(*) FROM message WHERE message_id = ?", message_id) == 1
    except sqlite3.OperationalError:
        return False


# --- IDLE over a path that goes silent, and IDLE renewal ---------------------------------

def test_a_black_hole_during_idle_is_noticed_within_the_read_timeout(env, dovecot: Dovecot, mail):
    with Proxy(dovecot.port) as proxy:
        url = env["ESCALATE_IMAP_URL"].replace(f":{dovecot.port}/", f":{proxy.port}/")
        app = app_for(env, ESCALATE_IMAP_URL=url, ESCALATE_IMAP_TIMEOUT="1.5", ESCALATE_POLL_SECONDS="2.5")
        poller = Poller()
        poller.run(app, parse_time(NOW), keep_waiting=lambda: False)  # connects and drains; keeps the connection
        proxy.blackhole_in_idle = True
        started = time.monotonic()
        with pytest.raises(MailboxUnavailable):
            poller.run(app, parse_time(NOW), keep_waiting=lambda: True)  # drains, IDLEs ~2 s: the path dies in it
        assert proxy.mode == "blackhole", "the path did not die during IDLE"
        assert time.monotonic() - started <= 2.5 + 1.5 + 2  # no hang beyond IDLE budget + read timeout
        dovecot.append(mail(sender="carl@customer.example", subject="During the outage", body="x",
                            message_id="dark@x.example"))
        proxy.mode = "pass"
        restored = time.monotonic()
        poller.run(app, parse_time(NOW))
        assert time.monotonic() - restored < 60
        db.close()
    assert _stored(env, "dark@x.example")


def test_idle_is_renewed_before_the_renewal_interval(env, dovecot: Dovecot, mail, monkeypatch):
    # stands for the 9 minutes; not shorter: Dovecot tells an IDLE client of new mail 0.5 s after it came
    monkeypatch.setattr(mailbox_module, "IDLE_RENEW_SECONDS", 1.0)
    with Proxy(dovecot.port) as proxy:
        url = env["ESCALATE_IMAP_URL"].replace(f":{dovecot.port}/", f":{proxy.port}/")
        app = app_for(env, ESCALATE_IMAP_URL=url, ESCALATE_POLL_SECONDS="3.5")  # three IDLEs, till 1 s before the 3.5 s
        poller = Poller()
        threading.Timer(1.2, lambda: dovecot.append(mail(sender="x@y.example", subject="mid-idle", body="x",
                                                         message_id="idle@x.example"))).start()
        poller.run(app, parse_time(NOW), keep_waiting=lambda: True)
        poller.close()
        db.close()
    gaps = [b - a for a, b in zip(proxy.idle_commands, proxy.idle_commands[1:])]
    assert len(proxy.idle_commands) >= 3 and max(gaps) <= 1.0 + 1.0
    assert _stored(env, "idle@x.example")  # announced by IDLE and drained within the same run


# --- random SIGKILLs during a bounded ingest ---------------------------------------------------

def test_random_kills_during_ingest_lose_and_duplicate_nothing(env, dovecot: Dovecot, mail):
    """Mail (60% new threads, 30% replies, 10% re-sent duplicates), escalate SIGKILLed at a random
    moment of each run once it is storing mail, and restarted (seeded; ESCALATE_SOAK_SCALE multiplies
    the kills and the mail); the 2,000-mail/50-kill run is bench/ingest_bench.py --kills."""
    rng = random.Random(7)
    kills = soak.scaled(3)
    threads = 80 * kills  # stored a fetch of 100 mails at a time: most kills find some left to store
    originals = mails(mail, threads)
    replies = [mail(sender=f"m{n}@customer.example", subject=f"Re: Issue m{n}", body="more",
                    message_id=f"r{n}@customer.example", in_reply_to=f"m{n}@customer.example") for n in range(threads // 2)]
    resent = rng.sample(originals, threads // 6)
    half, quarter = threads // 2, threads // 4
    append_many(dovecot, originals[:half] + replies[:quarter] + originals[half:] + replies[quarter:] + resent)
    env["ESCALATE_PROCESSED"] = "flag"
    expected = {f"m{n}@customer.example" for n in range(threads)} | {f"r{n}@customer.example" for n in range(threads // 2)}

    def stored() -> int:
        return scalar(env, "SELECT count(*) FROM message")

    landed = 0  # kills that found mail still to store
    for _ in range(kills):
        before = stored()
        process = subprocess.Popen([sys.executable, "-m", "escalate", "run", "--once", "--now", NOW],
                                   env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until("the run stores mail or ends", lambda process=process, before=before: (
            stored() > before or process.poll() is not None), interval=0.01)
        time.sleep(rng.uniform(0.0, 0.15))
        if process.poll() is None:
            process.kill()
            landed += stored() < len(expected)
        process.wait()
        assert scalar(env, "PRAGMA integrity_check") == "ok"
    finished = run_once(env)
    assert finished.returncode == 0, finished.stderr
    print(f"{landed} of {kills} kills landed while mail was left to store")
    assert landed >= kills * 2 // 3, "too few kills landed while ingesting; the test proves little"
    assert_ingest_invariants(env, message_ids=expected, tickets=threads)
