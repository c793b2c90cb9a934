"""Real mail servers on loopback for the demo and the test suite.

By design nothing in an end-to-end test stands in for IMAP or SMTP, and nothing leaves
127.0.0.1. So the demo and the tests run a real Dovecot (Debian ``dovecot-imapd``) from a
private work directory, and a real aiosmtpd server that records what the daemon sends and can
be told to misbehave the way real relays do.
"""

from __future__ import annotations

import asyncio
import atexit
import email
import email.policy
import grp
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from aiosmtpd.controller import Controller
from imapclient import IMAPClient

__all__ = ["Dovecot", "LoopbackServerError", "ReceivedMail", "SmtpSink"]

LOOPBACK = "127.0.0.1"
DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"


class LoopbackServerError(RuntimeError):
    """A loopback server did not start, or a command against it failed."""


def _free_port() -> int:
    """Ask the kernel for an unused loopback port.

    Dovecot binds its own sockets, so it cannot be handed a port-0 socket; the tiny window
    between closing this probe and Dovecot binding is accepted."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Dovecot:
    """Dovecot IMAP on a loopback port, with its config, Maildirs, sockets and log in ``workdir``.

    Run as root (the test machine and CI), Dovecot refuses to touch mail as uid 0, so mail is
    owned by the ``mail`` user and the internal/login processes run as Debian's ``dovecot`` /
    ``dovenull``. Those users cannot traverse a root-only 0700 parent such as pytest's
    ``/tmp/pytest-of-root``, so the mail processes are chrooted into ``workdir/mail`` (the
    ``/./`` in the userdb home) and the auth process, which reads the passwd-file, runs as root.
    Run as anyone else, every process simply runs as that user.
    """

    def __init__(
        self, workdir: Path, users: dict[str, str] | None = None, port: int | None = None
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.users = dict(users) if users is not None else {"support": "support-pw"}
        for name, password in self.users.items():
            # passwd-file has no quoting: a ':' or newline would silently shift the fields.
            if any(c in name + password for c in ":\n") or not name:
                raise ValueError(f"user/password not representable in a passwd-file: {name!r}")
        self.host = LOOPBACK
        self.port = port if port is not None else _free_port()
        self.config_path = self.workdir / "dovecot.conf"
        self.log_path = self.workdir / "dovecot.log"
        self.mail_dir = self.workdir / "mail"
        self.run_dir = self.workdir / "run"
        if len(f"{self.run_dir}/token-login/imap-urlauth") > 100:
            # A Unix socket's path has at most 107 bytes: under a deep work directory (pytest-xdist adds a level)
            # Dovecot's longest socket would not fit, so its sockets go to a short directory of their own.
            self.run_dir = Path(tempfile.mkdtemp(prefix="escalate-dovecot-"))
            atexit.register(shutil.rmtree, self.run_dir, True)
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Write the config, start ``dovecot -F`` and return once the port greets like IMAP."""
        if self.running:
            return
        if self._proc is not None:  # it died on its own: clear up the rest of the group first
            self._reap()
        self._write_config()
        # A SIGKILLed master leaves master.pid behind; if that pid has been reused by an
        # unrelated process, Dovecot would refuse to start ("already running").
        (self.run_dir / "master.pid").unlink(missing_ok=True)
        with open(self.log_path, "ab") as log:  # errors before Dovecot's log process is up
            self._proc = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                # Own process group: kill() and stop() can reach every Dovecot child, and a
                # Ctrl-C in the terminal reaches only Python, whose atexit then stops us.
                start_new_session=True,
            )
        atexit.register(self.stop)
        try:
            self._wait_ready(timeout=10.0)
        except BaseException:
            self.kill()
            raise

    def stop(self) -> None:
        """Graceful stop (SIGTERM), waiting for the whole process group; safe to call twice.

        Dovecot's master sleeps a hard-coded second during shutdown
        (``services_monitor_wait_and_kill``), so this takes about 1 s; use kill() where a
        graceful stop does not matter."""
        proc = self._proc
        if proc is None:
            return
        if not _exited(proc):
            proc.send_signal(signal.SIGTERM)
            try:
                # Wait without reaping, so the group id cannot be reused before killpg below.
                _wait_exit_no_reap(proc, timeout=10.0)
            except TimeoutError:
                pass
        self._reap()

    def kill(self) -> None:
        """SIGKILL the master and all its children at once, as a crash would (fault tests)."""
        if self._proc is not None:
            self._reap()

    def restart(self) -> None:
        """stop() then start() on the same port and work directory: the mail stays."""
        self.stop()
        self.start()

    def _reap(self) -> None:
        """SIGKILL whatever is left of the process group, wait until it is gone, reap the master.

        Children that outlive the master keep the listening socket open, and the next
        start() on this port would fail with "Address already in use". The master is reaped
        last: until then its zombie keeps the group id from being reused."""
        assert self._proc is not None
        pgid = self._proc.pid
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10.0
        while _live_group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.01)
        self._proc.wait()
        self._proc = None
        atexit.unregister(self.stop)

    @property
    def running(self) -> bool:
        return self._proc is not None and not _exited(self._proc)

    @property
    def pid(self) -> int | None:
        """The master's pid, which is also the process-group id of every Dovecot process."""
        return self._proc.pid if self._proc is not None else None

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use -------------------------------------------------------------------------------

    def url(self, user: str = "support", folder: str = "INBOX") -> str:
        """The mailbox URL the daemon is configured with, e.g. ``imap://support:pw@127.0.0.1:1143/INBOX``."""
        return (
            f"imap://{quote(user, safe='')}:{quote(self.users[user], safe='')}"
            f"@{self.host}:{self.port}/{quote(folder)}"
        )

    def append(
        self,
        raw: bytes,
        user: str = "support",
        folder: str = "INBOX",
        flags: Iterable[str | bytes] = (),
        arrived_at: datetime | None = None,
    ) -> int:
        """Deliver ``raw`` with IMAP APPEND (creating ``folder`` if needed); returns its UID.
        ``arrived_at``: the server's arrival time (INTERNALDATE), e.g. mail that came while escalate was down."""
        with IMAPClient(self.host, self.port, ssl=False, timeout=10) as client:
            client.login(user, self.users[user])
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags), msg_time=arrived_at)
        match = re.search(rb"APPENDUID \d+ (\d+)", response)  # Dovecot always has UIDPLUS
        if match is None:
            raise LoopbackServerError(f"APPEND gave no APPENDUID: {response!r}")
        return int(match.group(1))

    def doveadm(self, *args: str) -> str:
        """Run ``doveadm -c CONF ARGS`` (e.g. ``mailbox update --uid-validity``); returns stdout."""
        result = subprocess.run(
            [DOVEADM, "-c", str(self.config_path), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if result.returncode != 0:
            raise LoopbackServerError(
                f"doveadm {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result.stdout

    def empty_mailboxes(self, grace: float = 5.0) -> None:
        """Delete every user's mail, folders and indexes while Dovecot runs on, so the next login
        finds what a server just started has: an empty INBOX alone, UIDs from 1. (A restart would
        cost the second a graceful stop takes; the tests share one server and empty it between tests.)

        An IMAP session still open could write its index into the emptied home, so the ``imap``
        processes (one per connection; each ends soon after its client hangs up) are waited for
        first, and those that outlive ``grace`` are killed: a client that never hung up."""
        if self._proc is not None and self.running:
            self._end_mail_sessions(grace)
        for user in self.users:
            home = self.mail_dir / user
            if home.exists():  # moved away first: nothing can see a half-deleted home
                emptied = self.workdir / f"emptied-{user}-{secrets.token_hex(4)}"
                home.rename(emptied)
                shutil.rmtree(emptied)
        self._make_homes()

    def _end_mail_sessions(self, grace: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + grace
        while (sessions := _live_group_members(self._proc.pid, command="imap")) and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in sessions:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while _live_group_members(self._proc.pid, command="imap") and time.monotonic() < deadline + grace:
            time.sleep(0.01)

    # -- internals -------------------------------------------------------------------------

    def _make_homes(self) -> list[Path]:
        self.mail_dir.mkdir(exist_ok=True)
        homes = [self.mail_dir / name for name in self.users]
        for home in homes:
            home.mkdir(exist_ok=True)  # else the first login logs "chdir(home) failed"
        if os.geteuid() == 0:
            mail = pwd.getpwnam("mail")
            for path in (self.mail_dir, *homes):
                os.chown(path, mail.pw_uid, mail.pw_gid)
        return homes

    def _write_config(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._make_homes()
        users_file = self.workdir / "users"
        users_file.write_text("".join(f"{u}:{{PLAIN}}{p}::::::\n" for u, p in self.users.items()))
        users_file.chmod(0o600)

        if os.geteuid() == 0:
            mail = pwd.getpwnam("mail")
            uid, gid = mail.pw_uid, mail.pw_gid
            identity = (
                "default_internal_user = dovecot\n"
                "default_login_user = dovenull\n"
                # The passwd-file sits below directories only root may traverse.
                "service auth {\n  user = root\n}\n"
                f"valid_chroot_dirs = {self.mail_dir}\n"
            )
            home = f"{self.mail_dir}/./%u"  # chroot to mail/, home /<user> inside it
        else:
            uid, gid = os.getuid(), os.getgid()
            user = pwd.getpwuid(uid).pw_name
            group = grp.getgrgid(gid).gr_name
            identity = (
                f"default_internal_user = {user}\n"
                f"default_internal_group = {group}\n"
                f"default_login_user = {user}\n"
                # chroot() needs root, and these two chroot by default (the other chrooting
                # services are started on demand only, by features not configured here).
                "service imap-login {\n  chroot =\n}\n"
                "service anvil {\n  chroot =\n}\n"
            )
            home = f"{self.mail_dir}/%u"

        self.config_path.write_text(
            f"""\
# Written by escalate.testing.loopback.Dovecot; rewritten on every start().
base_dir = {self.run_dir}
state_dir = {self.workdir}/state
log_path = {self.log_path}
listen = {LOOPBACK}
protocols = imap
ssl = no
disable_plaintext_auth = no
# A wrong password would otherwise cost every test 2 s.
auth_failure_delay = 0
first_valid_uid = {uid}
first_valid_gid = {gid}
mail_location = maildir:~/Maildir
# Several daemon instances, IDLE connections and test clients share one user and one IP.
mail_max_userip_connections = 100
{identity}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users_file}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}
}}
service imap-login {{
  inet_listener imap {{
    address = {LOOPBACK}
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""
        )

    def _wait_ready(self, timeout: float) -> None:
        """Poll until the port sends an IMAP greeting; fail fast if Dovecot exits."""
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        last_error: object = None
        while time.monotonic() < deadline:
            if _exited(self._proc):
                raise LoopbackServerError(f"dovecot exited during start\n{self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0) as s:
                    greeting = s.recv(1024)
                if greeting.startswith(b"* OK"):
                    return
                last_error = greeting
            except OSError as exc:
                last_error = exc
            time.sleep(0.02)
        raise LoopbackServerError(
            f"dovecot gave no IMAP greeting on {self.host}:{self.port} within {timeout} s "
            f"(last: {last_error!r})\n{self._log_tail()}"
        )

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "--- dovecot.log (tail) ---\n" + "\n".join(text.splitlines()[-lines:])


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Has ``proc`` exited? Unlike Popen.poll() this does not reap it: the zombie keeps its pid,
    and so its process-group id, reserved until _reap() has signalled the group."""
    if proc.returncode is not None:
        return True
    return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _live_group_members(pgid: int, command: str | None = None) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (a zombie holds no sockets), only
    those running ``command`` when given.

    Orphaned Dovecot children are reparented to pid 1, which may reap them late."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().split("(", 1)[1].rsplit(")", 1)
            state, _ppid, pgrp = fields.split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) == pgid and state != "Z" and command in (None, name):
            pids.append(int(stat.parent.name))
    return pids


def _wait_exit_no_reap(proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _exited(proc):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"pid {proc.pid} still running after {timeout} s")
        time.sleep(0.02)


# -- SMTP -----------------------------------------------------------------------------------

SMTP_MODES = frozenset({"accept", "tempfail", "reject", "refuse_rcpt", "drop_after_data", "slow"})


@dataclass(frozen=True)
class ReceivedMail:
    """One message the sink accepted: the envelope, the exact bytes, and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage
    peer: Any


class _Handler:
    """aiosmtpd hooks; they run on the controller's event-loop thread."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.sink.mode == "refuse_rcpt" and address in self.sink.refused:
            return f"550 5.1.1 <{address}>: recipient refused by the loopback sink"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        sink = self.sink
        mode = sink.mode
        with sink._lock:
            sink._attempts += 1
        if mode == "tempfail":
            return "451 4.3.0 temporary failure (loopback sink)"
        if mode == "reject":
            return "554 5.6.0 message rejected (loopback sink)"
        if mode == "slow":
            await asyncio.sleep(sink.delay)
        data = bytes(envelope.original_content)
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=data,
            message=email.message_from_bytes(data, policy=email.policy.default),
            peer=session.peer,
        )
        with sink._lock:
            sink._messages.append(mail)
        if mode == "drop_after_data":
            # The ambiguous ack: the message was received (and is recorded) but the client
            # never sees the reply. Closing the transport makes aiosmtpd cancel this session
            # task, which it handles quietly; the future just parks us until then.
            server.transport.close()
            await asyncio.get_running_loop().create_future()
        return "250 OK"


class _Controller(Controller):
    """Controller that counts SMTP sessions and binds port 0 (no race for a free port)."""

    def __init__(self, sink: SmtpSink, port: int) -> None:
        super().__init__(
            _Handler(sink),
            hostname=LOOPBACK,
            port=port,
            # advertise SMTPUTF8 (RFC 6531) or not: non-ASCII addresses need it
            enable_SMTPUTF8=sink.smtputf8,
            # AUTH PLAIN/LOGIN over plain TCP, loopback only; aiosmtpd answers a wrong password with 535
            **({"authenticator": sink._authenticate, "auth_require_tls": False}
               if sink.login else {}),
            # SMTP would otherwise call socket.getfqdn(), which can stall on DNS.
            server_hostname="localhost",
            # aiosmtpd's 1 s default fails starts on a busy CI machine.
            ready_timeout=10.0,
        )
        self._sink = sink

    def factory(self):
        # aiosmtpd builds one SMTP protocol object per accepted connection.
        with self._sink._lock:
            self._sink._connections += 1
        return super().factory()

    def _trigger_server(self):
        # With port=0 the kernel chose the port; learn it before aiosmtpd's readiness probe.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that records accepted mail and can fail on purpose.

    Modes (settable while running): ``accept`` (250), ``tempfail`` (451 on DATA), ``reject``
    (554 on DATA), ``refuse_rcpt`` (550 at RCPT for addresses in ``refused``, the rest
    accepted), ``drop_after_data`` (records the message, then closes the connection without
    replying), ``slow`` (waits ``delay`` seconds, then accepts). ``attempts`` counts DATA
    commands whatever the outcome; ``connections`` counts SMTP sessions. ``smtputf8=False``
    makes a server that does not offer SMTPUTF8 (no non-ASCII addresses); ``login=(user,
    password)`` one that requires AUTH (``url`` then carries that user and password; change
    ``login`` while running to make the client's password wrong).
    """

    def __init__(
        self, mode: str = "accept", *, refused: Iterable[str] = (), delay: float = 0.0, smtputf8: bool = True,
        login: tuple[str, str] | None = None,
    ) -> None:
        self.mode = mode
        self.smtputf8 = smtputf8
        self.login = login
        self.refused: set[str] = set(refused)
        self.delay = delay
        self.host = LOOPBACK
        self.port: int | None = None  # chosen by the kernel at first start, kept on restart
        self._lock = threading.Lock()
        self._messages: list[ReceivedMail] = []
        self._attempts = 0
        self._connections = 0
        self._controller: _Controller | None = None

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in SMTP_MODES:
            raise ValueError(f"unknown SmtpSink mode {value!r}; one of {sorted(SMTP_MODES)}")
        self._mode = value

    def start(self) -> None:
        if self._controller is not None:
            return
        controller = _Controller(self, self.port or 0)
        controller.start()
        self.port = controller.port
        self._controller = controller
        with self._lock:
            self._connections -= 1  # aiosmtpd's own readiness probe in start()

    def stop(self) -> None:
        """Stop listening and cut open sessions; idempotent."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        user, password = self.login or ("", "")
        ok = auth_data.login == user.encode() and auth_data.password == password.encode()
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    @property
    def url(self) -> str:
        if self.port is None:
            raise LoopbackServerError("SmtpSink has no port until start()")
        if self.login:
            return f"smtp://{quote(self.login[0], safe='')}:{quote(self.login[1], safe='')}@{self.host}:{self.port}"
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[ReceivedMail]:
        """A snapshot of the accepted messages, oldest first."""
        with self._lock:
            return list(self._messages)

    @property
    def attempts(self) -> int:
        with self._lock:
            return self._attempts

    @property
    def connections(self) -> int:
        with self._lock:
            return self._connections

    def clear(self) -> None:
        """Forget messages and reset ``attempts`` and ``connections`` to 0."""
        with self._lock:
            self._messages.clear()
            self._attempts = 0
            self._connections = 0

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedMail]:
        """Return the messages once at least ``count`` were accepted; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages
            if len(messages) >= count:
                return messages
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"SmtpSink received {len(messages)} of {count} messages in {timeout} s"
                )
            time.sleep(0.01)


class Postgres:
    """Debian's PostgreSQL cluster, started with `pg_ctlcluster` when it is down, and one
    throw-away database (and login role) per user of this class — for the multi-instance mode's
    tests and benchmarks. Listens on loopback as Debian configures it; needs root (or the
    postgres user) to start the cluster and create the role.
    """

    ROLE = "escalate_test"
    PASSWORD = "escalate-test-pw"

    def __init__(self, version: str | None = None, cluster: str = "main") -> None:
        self.version = version or self._installed_version()
        self.cluster = cluster
        self.port = 5432
        self.databases: list[str] = []  # every database created, to drop at the end
        self._handed_out: list[str] = []
        self._spare: list[str] = []  # given back, to be emptied and handed out again

    @staticmethod
    def _installed_version() -> str:
        versions = sorted(p.name for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "postgres").exists())
        if not versions:
            raise LoopbackServerError("PostgreSQL is not installed (Debian package `postgresql`)")
        return versions[-1]

    def _psql(self, sql: str, database: str = "postgres") -> str:
        command = ["psql", "-X", "-q", "-t", "-A", "-p", str(self.port), "-d", database, "-c", sql]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--"] + command
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise LoopbackServerError(f"psql {sql!r}: {done.stderr.strip()}")
        return done.stdout.strip()

    def start(self) -> None:
        status = subprocess.run(["pg_lsclusters", "-h", self.version, self.cluster], capture_output=True, text=True)
        fields = status.stdout.split()
        if status.returncode != 0 or not fields:
            raise LoopbackServerError(f"no PostgreSQL cluster {self.version}/{self.cluster}: {status.stderr.strip()}")
        self.port = int(fields[2])
        if fields[3] != "online":
            started = subprocess.run(["pg_ctlcluster", self.version, self.cluster, "start"],
                                     capture_output=True, text=True, timeout=120)
            if started.returncode != 0:
                raise LoopbackServerError(f"pg_ctlcluster {self.version} {self.cluster} start: {started.stderr.strip()}")
        exists = self._psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{self.ROLE}'")
        if not exists:
            self._psql(f"CREATE ROLE {self.ROLE} LOGIN CREATEDB PASSWORD '{self.PASSWORD}'")

    def create_database(self) -> str:
        """A fresh, empty database; returns its postgresql:// URL (loopback, password auth).

        A database given back with recycle() is emptied and handed out again rather than a new one
        created: creating one and dropping it at the end cost PostgreSQL about 1.5 s (a checkpoint
        each), emptying one a tenth of that."""
        if self._spare:
            name = self._spare.pop()
            self._empty(name)
        else:
            name = f"escalate_test_{os.getpid()}_{len(self.databases)}_{int(time.time() * 1000) % 10**8}"
            self._psql(f"CREATE DATABASE {name} OWNER {self.ROLE}")
            self.databases.append(name)
        self._handed_out.append(name)
        return f"postgresql://{self.ROLE}:{quote(self.PASSWORD, safe='')}@127.0.0.1:{self.port}/{name}"

    def recycle(self) -> None:
        """Take back every database handed out so far: their users are done with them."""
        self._spare.extend(self._handed_out)
        self._handed_out.clear()

    def _empty(self, name: str) -> None:
        """Drop everything in the database, as new: its tables, sequences, locks and sessions."""
        # the sessions first (they would hold locks, advisory ones too), waiting up to 5 s for each to end
        self._psql("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND pid <> pg_backend_pid(); "
                   f"DROP SCHEMA public CASCADE; CREATE SCHEMA public AUTHORIZATION {self.ROLE}", database=name)

    def drop_databases(self) -> None:
        for name in self.databases:
            try:
                self._psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            except LoopbackServerError:
                pass  # a leftover test database is harmless; the next run uses a new name
        self.databases.clear()
        self._spare.clear()
        self._handed_out.clear()
