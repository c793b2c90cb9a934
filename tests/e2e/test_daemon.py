"""`escalate run` as a long-running process: it polls, escalates and sends on its own schedule,
reloads rules on SIGHUP (keeping the last good ones), and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from escalate.testing.loopback import Dovecot, SmtpSink

from ..conftest import TEST_RULES
from .daemon_process import DaemonProcess, wait_until
from .log_lines import events, parse_lines

IMMEDIATE_RULES = TEST_RULES.replace("no_first_response_for: 15m", "no_first_response_for: 0m")


def test_daemon_escalates_on_its_own_and_stops_on_sigterm(env, rules_file, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    with DaemonProcess(env) as daemon:
        dovecot.append(mail(sender="carl@customer.example", subject="Site down", body="All pages 500."))
        [first] = smtp_sink.wait_for(1, timeout=20)
        assert first.rcpt_tos == ["tier1@example.com"] and "Site down" in first.message["Subject"]

        # a broken rules file: the reload fails loudly, and the old rules keep working
        rules_path = env["ESCALATE_RULES"]
        with open(rules_path, "w") as handle:
            handle.write(IMMEDIATE_RULES.replace("repeat_every: 10m", "repeat_every: soon"))
        daemon.send_signal(signal.SIGHUP)
        daemon.wait_for_event("rules-reload-failed")  # the loop took the signal before the next mail arrives
        dovecot.append(mail(sender="dana@other.example", subject="Database down", body="Timeouts."))
        second = smtp_sink.wait_for(2, timeout=20)[1]
        assert "Database down" in second.message["Subject"]
        assert daemon.poll() is None, "the daemon died"
        code, err = daemon.stop()
    assert code == 0, err
    [failed] = events(parse_lines(err, "logfmt"), "rules-reload-failed")
    assert failed["level"] == "error" and failed["keeping"] == "the last good rules"
    assert f'{rules_path}:' in failed["error"] and 'expected a duration like "30m", got "soon"' in failed["error"]
    assert env["ESCALATE_SECRET"] not in err


class NotifySocket:
    """systemd's side of sd_notify: a unix datagram socket the daemon reports to (no systemd needed)."""

    def __init__(self) -> None:
        import socket
        import tempfile
        self.directory = tempfile.mkdtemp(prefix="esc-notify-")  # short: unix socket paths max out at 107 bytes
        self.path = os.path.join(self.directory, "notify")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.received: list[tuple[float, str]] = []

    def collect(self, seconds: float) -> list[tuple[float, str]]:
        """Read datagrams for `seconds`; returns (arrival time, field) pairs received meanwhile."""
        import socket
        deadline = time.monotonic() + seconds
        new = []
        while (left := deadline - time.monotonic()) > 0:
            self.socket.settimeout(left)
            try:
                data = self.socket.recv(4096)
            except socket.timeout:
                break
            for field in data.decode().splitlines():
                new.append((time.monotonic(), field))
        self.received += new
        return new

    def fill(self) -> None:
        """Queue datagrams until the socket takes no more (net.unix.max_dgram_qlen), as when nobody reads it."""
        import socket
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.setblocking(False)
            try:
                while True:
                    sender.sendto(b"STATUS=filler", self.path)
            except BlockingIOError:
                pass

    def drain(self) -> None:
        """Forget what is already queued in the socket (sent before now)."""
        self.socket.setblocking(False)
        try:
            while True:
                self.received.append((time.monotonic(), self.socket.recv(4096).decode()))
        except BlockingIOError:
            pass
        finally:
            self.socket.setblocking(True)

    def wait_for(self, field: str, timeout: float = 15.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, got in self.collect(0.2):
                if got == field:
                    return at
        raise AssertionError(f"no {field} within {timeout} s; got {[f for _, f in self.received]}")

    def close(self) -> None:
        import shutil
        self.socket.close()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def notify_socket():
    sock = NotifySocket()
    yield sock
    sock.close()


def test_systemd_hears_ready_watchdog_status_and_stopping(env, notify_socket, dovecot: Dovecot, smtp_sink: SmtpSink):
    env.update({"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "600000"})  # WatchdogSec=0.6s → ping every 0.3 s
    daemon = DaemonProcess(env)
    try:
        notify_socket.wait_for("READY=1")
        pings = [at for at, field in notify_socket.collect(1.6) if field == "WATCHDOG=1"]
        assert len(pings) >= 4, notify_socket.received
        assert max(b - a for a, b in zip(pings, pings[1:])) <= 0.55  # ≤ WatchdogSec/2, with scheduling slack
        assert any(field.startswith("STATUS=") and "ingest ok" in field for _, field in notify_socket.received)
    finally:
        code, err = daemon.stop()
    assert code == 0, err
    notify_socket.collect(0.3)
    assert "STOPPING=1" in [field for _, field in notify_socket.received]


def test_a_stuck_stage_stops_the_watchdog(env, notify_socket, dovecot: Dovecot, smtp_sink: SmtpSink):
    import socket
    # an IMAP server that accepts and then says nothing: the ingest stage hangs in its read
    black_hole = socket.socket()
    black_hole.bind(("127.0.0.1", 0))
    black_hole.listen(5)
    port = black_hole.getsockname()[1]
    # the hung read would last the 60 s IMAP timeout: SIGTERM waits 1 s for it (ESCALATE_STOP_SECONDS), not 8
    env.update({"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "600000", "ESCALATE_STUCK_SECONDS": "1",
                "ESCALATE_IMAP_URL": f"imap://support:pw@127.0.0.1:{port}/INBOX", "ESCALATE_STOP_SECONDS": "1"})
    with DaemonProcess(env) as daemon:
        try:
            notify_socket.wait_for("READY=1")
            # past the stuck threshold (real time: this is the watchdog's own clock), the daemon says so …
            wait_until("the daemon says ingest is stuck", lambda: "not telling the watchdog: stuck in ingest" in daemon.stderr())
            notify_socket.drain()  # pings sent while ingest was not yet stuck
            later = notify_socket.collect(1.2)  # … and four ping intervals pass without a ping
            assert "WATCHDOG=1" not in [field for _, field in later], "the watchdog was fed while ingest hung"
            assert daemon.poll() is None
        finally:
            code, err = daemon.stop()
            black_hole.close()
    assert code == 0, err  # SIGTERM still ends it promptly, stuck thread and all
    assert "ingest still busy at shutdown after 1 s" in err


def test_no_ready_when_the_rules_are_broken(env, rules_file, notify_socket, dovecot: Dovecot, smtp_sink: SmtpSink):
    env.update({"NOTIFY_SOCKET": notify_socket.path,
                "ESCALATE_RULES": str(rules_file(TEST_RULES.replace("version: 1", "version: 7")))})
    code, err = DaemonProcess(env).wait(timeout=20)
    assert code == 2
    assert "rules.yaml:1:" in err and "version" in err
    notify_socket.collect(0.2)
    assert "READY=1" not in [field for _, field in notify_socket.received]


def test_a_second_daemon_on_the_same_sqlite_file_refuses(env, notify_socket, dovecot: Dovecot, smtp_sink: SmtpSink, cli):
    env["NOTIFY_SOCKET"] = notify_socket.path
    first = DaemonProcess(env)
    try:
        notify_socket.wait_for("READY=1")
        second = subprocess.run([sys.executable, "-m", "escalate", "run"], env={**os.environ, **env},
                                capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert f"pid {first.pid}" in second.stderr and "would send every notification twice" in second.stderr
        once = cli("run", "--once", expect=1)
        assert "already evaluating and sending" in once.output
        assert first.poll() is None
    finally:
        code, err = first.stop()
    assert code == 0, err


def test_slow_smtp_does_not_delay_escalation_decisions(env, rules_file, dovecot: Dovecot, smtp_sink: SmtpSink, mail, cli):
    # the hung DATA is left to the restart after 1 s of SIGTERM (ESCALATE_STOP_SECONDS), not waited out
    env.update({"ESCALATE_RULES": str(rules_file(IMMEDIATE_RULES)), "ESCALATE_STOP_SECONDS": "1"})
    smtp_sink.mode, smtp_sink.delay = "slow", 8.0
    daemon = DaemonProcess(env)
    try:
        dovecot.append(mail(sender="carl@customer.example", subject="Site down", body="500s"))
        wait_until("the first DATA hangs", lambda: smtp_sink.attempts, timeout=15)
        assert smtp_sink.attempts == 1
        dovecot.append(mail(sender="dana@other.example", subject="API down", body="timeouts"))
        # within 5 s, while the first DATA still hangs for 8
        wait_until("the second ticket escalated while SMTP is slow", lambda: [
            row for row in json.loads(cli("outbox", "list", "--json").output) if row["ticket"] == "T-2"], timeout=5)
        assert smtp_sink.messages == []  # the first send is still waiting for its answer
    finally:
        code, err = daemon.stop()
    assert code == 0, err


def test_secrets_never_reach_logs_database_or_mail(env, tmp_path, dovecot: Dovecot, smtp_sink: SmtpSink, mail, rules_file):
    password = "support-pw"  # the Dovecot fixture's password, inside ESCALATE_IMAP_URL
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    daemon = DaemonProcess(env, "-vv")  # its stderr read as it comes: DEBUG is a lot of lines
    try:
        dovecot.append(mail(sender="carl@customer.example", subject="Outage", body="down"))
        smtp_sink.wait_for(1, timeout=20)
    finally:
        code, err = daemon.stop()
    assert code == 0, err
    assert "level=debug" in err  # it really logged at DEBUG
    database = (tmp_path / "escalate.db").read_bytes() + (tmp_path / "escalate.db-wal").read_bytes() \
        if (tmp_path / "escalate.db-wal").exists() else (tmp_path / "escalate.db").read_bytes()
    sent = b"".join(m.data for m in smtp_sink.messages)
    for secret in (password, env["ESCALATE_SECRET"]):
        assert secret not in err
        assert secret.encode() not in database
        assert secret.encode() not in sent


def test_a_password_in_rules_yaml_is_refused(rules_file, cli):
    path = rules_file(TEST_RULES.replace("timezone: UTC", "timezone: UTC\nsmtp_password: hunter2"))
    result = cli("rules", "check", str(path), expect=2)
    assert "secrets belong in the environment" in result.output


def test_metrics_endpoint_and_status_show_what_the_daemon_does(env, notify_socket, dovecot: Dovecot,
                                                               smtp_sink: SmtpSink, mail, cli):
    import socket
    import urllib.request
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env.update({"ESCALATE_METRICS": f"127.0.0.1:{port}", "NOTIFY_SOCKET": notify_socket.path})
    daemon = DaemonProcess(env)
    try:
        notify_socket.wait_for("READY=1")
        dovecot.append(mail(sender="carl@customer.example", subject="Outage in EU", body="down"))

        def metrics_with_the_ticket() -> str:
            page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            return page if 'escalate_mail_ingested_total{outcome="ticket"} 1.0' in page else ""

        text = wait_until("the ticket in the metrics", metrics_with_the_ticket, timeout=15)
        assert 'escalate_tickets{status="new",tier="none"} 1.0' in text
        assert "escalate_outbox_depth 0.0" in text
        assert "escalate_imap_up 1.0" in text
        import re
        ticks = re.search(r"^escalate_tick_duration_seconds_count (\S+)$", text, re.M)
        assert ticks and float(ticks.group(1)) >= 1, "the tick duration was never observed"
        assert 'escalate_stage_last_success_timestamp_seconds{stage="send"}' in text

        status = json.loads(cli("status", "--json").output)
        assert status["daemon"] == {"running": True, "pid": daemon.pid}
        assert status["tickets"] == {"new": 1}
        assert status["folders"][0]["folder"] == "INBOX" and status["folders"][0]["last_uid"] == 1
        assert "support-pw" not in json.dumps(status)
        person = cli("status").output
        assert f"running, pid {daemon.pid}" in person and "1 new" in person
    finally:
        code, err = daemon.stop()
    assert code == 0, err
    assert json.loads(cli("status", "--json", expect=3).output)["daemon"] == {"running": False, "pid": None}


def test_a_notify_socket_nobody_reads_never_stalls_the_daemon(env, rules_file, notify_socket, dovecot: Dovecot,
                                                              smtp_sink: SmtpSink, mail):
    """Found by the restart bench: a blocking sd_notify froze every stage once the queue was full."""
    env.update({"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "100000",  # a ping every 50 ms
                "ESCALATE_RULES": str(rules_file(IMMEDIATE_RULES))})
    notify_socket.fill()  # the queue nobody reads is full before the daemon's first word
    daemon = DaemonProcess(env)
    try:
        dovecot.append(mail(sender="carl@customer.example", subject="Site down", body="All pages 500."))
        smtp_sink.wait_for(1, timeout=20)
    finally:
        code, err = daemon.stop()
    assert code == 0, err
