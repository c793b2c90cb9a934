"""Logs worth reading: `escalate run` logs what it does at INFO without -v — start-up, each ticket
opened, each escalation, each reply acted on or refused, each rules reload, each SMTP or IMAP
outage and its recovery, the stop — as logfmt lines with fields (or JSON with
ESCALATE_LOG_FORMAT=json), customer text never breaking a line; under systemd the fields reach
journald as its own fields. Real Dovecot, aiosmtpd and the CLI as a process; SQLite."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time

import pytest
from escalate.ops import logs
from escalate.testing.loopback import Dovecot, SmtpSink
from escalate.store.batch import Batch, held_lines

from . import ingest_support
from .daemon_process import DaemonProcess, wait_until
from .log_lines import events, parse_journal_datagram, parse_lines, parse_logfmt
from .test_daemon import IMMEDIATE_RULES
from .test_replies import at, reply

# an encoded-word subject whose text tries to end the line and start a forged one
HOSTILE_SUBJECT = "=?utf-8?q?Checkout_is_down=0Alevel=3Derror_msg=3D=22forged=22_ticket=3DT-99_=5C?="
# a sender address may hold `=`, which ends a bare logfmt value
HOSTILE_SENDER = "Mallory <level=error=mallory@elsewhere.example>"


def hostile_mail() -> bytes:
    return (b"From: Carl <carl@customer.example>\r\nTo: support@example.com\r\n"
            b"Subject: " + HOSTILE_SUBJECT.encode() + b"\r\nMessage-ID: <carl-1@customer.example>\r\n"
            b"Date: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\nPayment fails with 502.\r\n")


def run_once(env: dict[str, str], minutes: float, *args: str) -> list[dict]:
    """`escalate run --once` as a process, as cron or a timer runs it; returns its log records."""
    done = ingest_support.run_once(env, *args, now=at(minutes))
    assert done.returncode == 0, done.stderr
    return parse_lines(done.stderr, env.get("ESCALATE_LOG_FORMAT", "logfmt")) if done.stderr else []


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_a_ticket_escalated_and_replied_to_is_logged_event_by_event_with_fields(
        log_format, env, dovecot: Dovecot, smtp_sink: SmtpSink, cli):
    env["ESCALATE_LOG_FORMAT"] = log_format
    dovecot.append(hostile_mail())
    records = run_once(env, 0)
    [opened] = events(records, "ticket-opened")
    assert (opened["level"], opened["ticket"], opened["severity"], opened["folder"]) == ("info", "T-1", "urgent", "INBOX")
    # the mail itself stays out of the logs (and so cannot forge a line): `tickets show` has it
    assert "forged" in json.loads(cli("tickets", "show", "T-1", "--json").output)["subject"]
    assert not [r for r in records if "forged" in json.dumps(r)]

    records = run_once(env, 16)
    [escalated] = events(records, "escalated")
    [outbox_row] = json.loads(cli("outbox", "list", "--json").output)
    assert escalated["level"] == "info"
    assert (escalated["ticket"], escalated["rule"], escalated["kind"]) == ("T-1", "urgent-no-first-response", "escalation")
    assert str(escalated["tier"]) == "1" and str(escalated["outbox"]) == str(outbox_row["id"])
    if log_format == "json":  # numbers stay numbers
        assert escalated["tier"] == 1 and escalated["outbox"] == outbox_row["id"]
    [sent] = events(records, "mail-sent")
    assert str(sent["sent"]) == "1"

    [notification] = smtp_sink.wait_for(1)
    dovecot.append(reply(HOSTILE_SENDER, notification, "#resolve\n"))
    dovecot.append(reply("Alice <alice@example.com>", notification, "#ack\nlooking\n"))
    records = run_once(env, 20)
    [refused] = events(records, "reply-refused")
    assert (refused["level"], refused["ticket"], str(refused["tier"])) == ("info", "T-1", "1")
    # the address comes back whole from its one line, and forges no level
    assert refused["sender"] == "level=error=mallory@elsewhere.example" and "not on the roster" in refused["reason"]
    assert {r["level"] for r in records} == {"info"}
    assert refused["commands"] in ("resolve", ["resolve"])
    [acted] = events(records, "reply-acted")
    assert (acted["level"], acted["ticket"], str(acted["tier"])) == ("info", "T-1", "1")
    assert acted["sender"] == "alice@example.com" and acted["commands"] in ("ack", ["ack"])
    assert json.loads(cli("tickets", "show", "T-1", "--json").output)["acknowledged_by"] == "alice@example.com"


def test_the_daemon_without_v_logs_start_reload_outages_recoveries_and_stop(env, rules_file, dovecot: Dovecot,
                                                                            smtp_sink: SmtpSink, mail):
    env["ESCALATE_RULES"] = str(rules_file(IMMEDIATE_RULES))
    with DaemonProcess(env) as daemon:  # `escalate run`, no -v
        dovecot.append(mail(sender="carl@customer.example", subject="Site down", body="500s"))
        smtp_sink.wait_for(1, timeout=20)
        smtp_sink.stop()  # the SMTP server goes away (T-2's escalation waits for its retry) …
        dovecot.append(mail(sender="dana@other.example", subject="API down", body="timeouts"))
        daemon.wait_for_event("smtp-unavailable")
        smtp_sink.start()  # … and comes back
        dovecot.kill()  # the IMAP server goes away (killed: a graceful stop takes Dovecot a second) …
        daemon.wait_for_event("imap-unavailable")
        dovecot.start()  # … and comes back: new mail is ingested again, its escalation sent
        dovecot.append(mail(sender="erin@third.example", subject="Login down", body="403"))
        assert "Login down" in smtp_sink.wait_for(2, timeout=30)[1].message["Subject"]
        daemon.send_signal(signal.SIGHUP)
        daemon.wait_for_event("rules-reloaded")
        code, err = daemon.stop()
    assert code == 0, err
    records = parse_lines(err, "logfmt")
    [started] = events(records, "started")
    assert started["level"] == "info" and started["logger"] == "escalate.ops.service"
    assert started["rules"] == env["ESCALATE_RULES"] and started["smtp"] == smtp_sink.url
    assert started["imap"].startswith("imap://support:***@127.0.0.1:") and started["imap"].endswith("/INBOX")
    assert env["ESCALATE_SECRET"] not in err and "support-pw" not in err
    assert [e["ticket"] for e in events(records, "escalated")] == ["T-1", "T-2", "T-3"]
    outage = events(records, "smtp-unavailable")
    assert outage and outage[0]["level"] == "warning" and outage[0]["stage"] == "send"
    [back] = events(records, "smtp-recovered")
    assert back["level"] == "info" and int(back["failures"]) == len(outage)
    imap_outage = events(records, "imap-unavailable")
    assert imap_outage and imap_outage[0]["stage"] == "ingest"
    [imap_back] = events(records, "imap-recovered")
    assert imap_back["level"] == "info" and float(imap_back["down_seconds"]) > 0
    [reloaded] = events(records, "rules-reloaded")
    assert reloaded["level"] == "info" and reloaded["path"] == env["ESCALATE_RULES"] and reloaded["rules"] == "2"
    assert records[-1]["msg"] == "stopped"


def test_escalate_run_logs_start_up_at_info_without_v_and_nothing_below_without_it(env, smtp_sink, dovecot):
    with DaemonProcess(env) as daemon:
        daemon.wait_for_event("started")  # its signal handlers are set: it is not stopped before them
        time.sleep(0.6)  # three polls and ticks (0.2 s apart): nothing happens, so nothing more is said
        code, err = daemon.stop()
    assert code == 0, err
    records = [r for r in parse_lines(err, "logfmt") if r["logger"] != "escalate.store.migrations"]  # a new database
    assert [(r["level"], r["msg"]) for r in records] == [("info", "started"), ("info", "stopped")]
    # -v: the daemon says more (DEBUG), still one logfmt line each
    with DaemonProcess(env, "-v") as daemon:
        # it logs DEBUG lines before its signal handlers are set: a SIGTERM then would kill it (-15)
        daemon.wait_for_event("started")
        wait_until("a DEBUG line from `escalate -v run`", lambda: "level=debug" in daemon.stderr())
        code, err = daemon.stop()
    assert code == 0, err
    assert "debug" in {r["level"] for r in parse_lines(err, "logfmt")}


def test_an_unknown_log_format_is_refused_with_a_clear_error(env, cli, tmp_path):
    env["ESCALATE_LOG_FORMAT"] = "xml"
    result = cli("status", expect=2)
    assert "ESCALATE_LOG_FORMAT: expected logfmt or json, got 'xml'" in result.output
    # the env file counts too, as it does for every other setting
    del env["ESCALATE_LOG_FORMAT"]
    (tmp_path / "escalate.env").write_text("ESCALATE_LOG_FORMAT=yaml\n", encoding="utf-8")
    result = cli("--env-file", str(tmp_path / "escalate.env"), "status", expect=2)
    assert "got 'yaml'" in result.output


# -- journald --------------------------------------------------------------------------------


class Journal:
    """journald's side of the native protocol: a unix datagram socket in a temporary directory,
    read as it comes (its queue holds only a few datagrams)."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "journal.socket")
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(self.path)
        self.datagrams: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = self.socket.recv(1 << 20)
            except OSError:
                return
            if data == b"":
                return
            self.datagrams.append(data)

    def received(self) -> list[dict[str, str]]:
        time.sleep(0.2)  # the last datagrams on their way
        taken = self.datagrams[:]
        del self.datagrams[:len(taken)]
        return [parse_journal_datagram(d) for d in taken]

    def close(self) -> None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as waker:
            waker.sendto(b"", self.path)  # the reader's last datagram: it returns
        self.reader.join(timeout=5)
        self.socket.close()


@pytest.fixture
def journal(monkeypatch, env):
    import tempfile
    directory = tempfile.mkdtemp(prefix="esc-journal-")  # short: unix socket paths end at 107 bytes
    server = Journal(directory)
    monkeypatch.setattr(logs, "JOURNAL_SOCKET", server.path)
    status = os.fstat(2)  # journald reads our stderr: it is the stream JOURNAL_STREAM names
    env["JOURNAL_STREAM"] = f"{status.st_dev}:{status.st_ino}"
    yield server
    server.close()
    os.unlink(server.path)
    os.rmdir(directory)
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    logs.setup(0)  # the next test's logging goes to stderr again


def test_under_journald_the_fields_are_journal_fields(journal: Journal, env, dovecot: Dovecot, smtp_sink: SmtpSink,
                                                      mail, cli):
    dovecot.append(hostile_mail())
    cli("run", "--once", "--now", at(0))
    cli("run", "--once", "--now", at(16))
    entries = journal.received()
    [opened] = [e for e in entries if e.get("EVENT") == "ticket-opened"]
    [escalated] = [e for e in entries if e.get("EVENT") == "escalated"]
    [outbox_row] = json.loads(cli("outbox", "list", "--json").output)
    assert (escalated["TICKET"], escalated["TIER"], escalated["RULE"], escalated["KIND"], escalated["OUTBOX"]) == \
        ("T-1", "1", "urgent-no-first-response", "escalation", str(outbox_row["id"]))
    assert (escalated["PRIORITY"], escalated["SYSLOG_IDENTIFIER"], escalated["LOGGER"]) == ("6", "escalate", "escalate.engine.tick")
    # held until the batch committed, and still said where it was logged
    assert escalated["CODE_FILE"].endswith("engine/tick.py") and escalated["CODE_FUNC"] == "_queue_mail"
    # MESSAGE is the logfmt line without the time, which journald stamps itself
    message = parse_logfmt(escalated["MESSAGE"])
    assert "time" not in message and (message["msg"], message["outbox"]) == ("escalated", str(outbox_row["id"]))
    assert (opened["TICKET"], opened["SEVERITY"], opened["FOLDER"], opened["UID"]) == ("T-1", "urgent", "INBOX", "1")
    assert parse_logfmt(opened["MESSAGE"])["msg"] == "ticket-opened"


def test_a_multi_line_value_travels_in_the_binary_form_and_a_refused_datagram_goes_to_stderr(journal: Journal,
                                                                                             capfd):
    stderr = logs.ProcessStderrHandler()
    handler = logs.JournalHandler(journal.path, fallback=stderr)
    handler.setFormatter(logs.formatter_for("logfmt", with_time=False))
    stderr.setFormatter(logs.formatter_for("logfmt"))
    record = logging.LogRecord("escalate.test", logging.WARNING, __file__, 1, "%s", ("quarantined",), None)
    record.escalate_fields = {"reason": "line one\nPRIORITY=0\nline two", "message": "not MESSAGE"}
    handler.handle(record)
    [entry] = journal.received()
    assert entry["REASON"] == "line one\nPRIORITY=0\nline two" and entry["PRIORITY"] == "4"
    assert entry["ESCALATE_MESSAGE"] == "not MESSAGE" and parse_logfmt(entry["MESSAGE"])["msg"] == "quarantined"
    capfd.readouterr()
    handler.path = journal.path + ".gone"  # journald went away: the line is not lost
    handler.handle(record)
    [line] = capfd.readouterr().err.splitlines()
    assert parse_logfmt(line)["reason"] == "line one\nPRIORITY=0\nline two"
    handler.close()


# -- the line itself ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["plain", "two words", 'quote " inside', "a=b", "back\\slash", "new\nline",
                                   "cr\rlf", "tab\there", "\x1b[31mred", "line\u2028separator", "tag\U000e0001", "", "ümlaut",
                                   "\nlevel=error msg=forged"])
def test_any_value_comes_back_whole_from_one_line(value):
    log = logging.getLogger("escalate.test")
    record = log.makeRecord(log.name, logging.INFO, __file__, 1, "%s", ("escalated",), None,
                            extra={"escalate_fields": {"subject": value, "ticket": "T-1"}})
    line = logs.LogfmtFormatter().format(record)
    assert len(line.splitlines()) == 1 and line.isprintable()
    parsed = parse_logfmt(line)
    assert (parsed["subject"], parsed["ticket"], parsed["level"], parsed["msg"]) == (value, "T-1", "info", "escalated")
    as_json = json.loads(logs.JsonFormatter().format(record))
    assert as_json["subject"] == value and len(logs.JsonFormatter().format(record).splitlines()) == 1


def test_secrets_in_fields_are_redacted():
    redactor = logs.RedactSecrets()
    redactor.add(["hunter2-secret"])
    log = logging.getLogger("escalate.test")
    record = log.makeRecord(log.name, logging.WARNING, __file__, 1, "%s", ("smtp-unavailable",), None,
                            extra={"escalate_fields": {"error": "login hunter2-secret refused", "to": ["a", "hunter2-secret"]}})
    redactor.filter(record)
    parsed = parse_logfmt(logs.LogfmtFormatter().format(record))
    assert parsed["error"] == "login *** refused" and parsed["to"] == "a,***"


def test_held_events_wait_for_the_commit_and_go_with_a_rollback(caplog):
    """A tick's events are held until its transaction commits: none for a batch that failed, none
    for a ticket whose savepoint was undone."""
    caplog.set_level(logging.INFO, logger="escalate.test")
    log = logging.getLogger("escalate.test")
    with pytest.raises(RuntimeError):
        with logs.held() as held:
            logs.event(log, "escalated", ticket="T-1", held=held)
            raise RuntimeError("the commit failed")
    assert not caplog.records
    with logs.held() as held:
        logs.event(log, "escalated", ticket="T-2", held=held)
        mark = held.mark()
        logs.event(log, "escalated", ticket="T-3", held=held)
        held.rollback(mark)  # T-3's savepoint undone
        logs.event(log, "started", pid=1)  # not held: logged at once
        assert [r.getMessage() for r in caplog.records] == ["started"]  # nothing held before the commit
    assert [(r.getMessage(), logs.fields_of(r)) for r in caplog.records] == [
        ("started", {"pid": 1}), ("escalated", {"ticket": "T-2"})]


def test_journald_is_used_only_when_it_reads_our_stderr(journal: Journal, monkeypatch, capfd):
    """A child of a service whose stderr was redirected inherits JOURNAL_STREAM but not the stream:
    it writes plain timed lines to its stderr, not to the journal."""
    status = os.fstat(2)
    monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino + 1}")
    logs.setup(0, daemon=True)
    logs.event(logging.getLogger("escalate.test"), "started", pid=1)
    [line] = capfd.readouterr().err.splitlines()
    assert parse_logfmt(line)["msg"] == "started" and "time" in parse_logfmt(line)
    monkeypatch.setenv("JOURNAL_STREAM", f"{status.st_dev}:{status.st_ino}")
    logs.setup(0, daemon=True)
    logs.event(logging.getLogger("escalate.test"), "started", pid=2)
    assert capfd.readouterr().err == ""
    [entry] = journal.received()
    assert (entry["EVENT"], entry["PID"]) == ("started", "2")


def test_a_unit_undone_drops_the_log_lines_it_held(caplog):
    """A ticket whose unit of the tick is undone leaves no "escalated" line; the others' stay."""
    caplog.set_level(logging.INFO, logger="escalate.test")
    log = logging.getLogger("escalate.test")
    with logs.held() as held:
        batch = Batch(log=held)
        with batch.unit():
            logs.event(log, "escalated", ticket="T-1", held=held_lines(batch))
        with pytest.raises(RuntimeError), batch.unit():
            logs.event(log, "escalated", ticket="T-2", held=held_lines(batch))
            raise RuntimeError("evaluating T-2 failed")
        assert not caplog.records
    assert [logs.fields_of(r)["ticket"] for r in caplog.records] == ["T-1"]
