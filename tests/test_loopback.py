"""The loopback mail servers every end-to-end test and the demo stand on (escalate.testing.loopback)."""

from __future__ import annotations

import asyncio
import socket
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from escalate.testing.loopback import Dovecot, LoopbackServerError, SmtpSink
from imapclient import IMAPClient

RAW_1 = b"From: a@example.com\r\nTo: support@example.com\r\nSubject: one\r\n\r\nfirst\r\n"
RAW_2 = b"From: b@example.com\r\nTo: support@example.com\r\nSubject: two\r\n\r\nsecond\r\n"


@pytest.fixture
def dovecot(tmp_path):
    server = Dovecot(tmp_path / "dovecot")
    server.start()
    yield server
    server.kill()  # a graceful stop costs Dovecot a fixed second; test_stop covers it


@pytest.fixture
def sink():
    with SmtpSink() as server:
        yield server


def read_inbox(server: Dovecot) -> tuple[int, dict[int, bytes]]:
    with IMAPClient(server.host, server.port, ssl=False, timeout=5) as client:
        client.login("support", "support-pw")
        uidvalidity = client.select_folder("INBOX", readonly=True)[b"UIDVALIDITY"]
        fetched = client.fetch(client.search(), ["BODY.PEEK[]"])
    return uidvalidity, {uid: data[b"BODY[]"] for uid, data in fetched.items()}


def group_alive(pgid: int) -> bool:
    """Is any process of this group still running? Zombies (left for pid 1 to reap) don't count."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(")", 1)[1].split()[:3]
        except (OSError, IndexError):
            continue
        if int(pgrp) == pgid and state != "Z":
            return True
    return False


def test_append_and_read_back(dovecot):
    assert dovecot.url() == f"imap://support:support-pw@127.0.0.1:{dovecot.port}/INBOX"
    assert dovecot.append(RAW_1) == 1
    assert dovecot.append(RAW_2, flags=[b"\\Seen"]) == 2

    uidvalidity, bodies = read_inbox(dovecot)

    assert uidvalidity > 0
    assert bodies == {1: RAW_1, 2: RAW_2}


def test_mail_survives_kill_and_restart(dovecot):
    dovecot.append(RAW_1)
    dovecot.append(RAW_2)
    before = read_inbox(dovecot)
    pgid = dovecot.pid

    dovecot.kill()
    assert not group_alive(pgid)  # no orphaned child keeps the port open
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((dovecot.host, dovecot.port), timeout=1).close()
    dovecot.restart()

    assert read_inbox(dovecot) == before


def test_emptied_mailboxes_look_like_a_new_servers_and_the_server_runs_on(dovecot):
    # the tests share one Dovecot and empty it between tests: each must find what a server of its own has
    dovecot.append(RAW_1)
    dovecot.append(RAW_2, folder="Escalated")
    pgid = dovecot.pid
    left_open = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=5)  # a client that never hangs up
    left_open.login("support", "support-pw")
    left_open.select_folder("INBOX")

    try:
        dovecot.empty_mailboxes(grace=0.5)
    finally:
        left_open.shutdown()

    assert dovecot.pid == pgid and dovecot.running
    assert dovecot.doveadm("mailbox", "list", "-u", "support").split() == ["INBOX"]
    assert read_inbox(dovecot)[1] == {}
    assert dovecot.append(RAW_2) == 1
    assert read_inbox(dovecot)[1] == {1: RAW_2}


def test_stop_is_graceful_complete_and_idempotent(tmp_path):
    server = Dovecot(tmp_path / "dovecot", users={"support": "pw with spaces/@"})
    with server:
        server.append(RAW_1, folder="Escalated")
        assert "Escalated" in server.doveadm("mailbox", "list", "-u", "support").split()
        pgid = server.pid
    assert server.url().startswith("imap://support:pw%20with%20spaces%2F%40@")
    assert not server.running and not group_alive(pgid)
    server.stop()


def test_failed_start_reports_the_log(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = Dovecot(tmp_path / "dovecot", port=taken.getsockname()[1])
        with pytest.raises(LoopbackServerError, match="Address already in use"):
            server.start()
    assert not server.running


def send(sink: SmtpSink, recipients: list[str], subject: str = "Escalation: ticket 7"):
    message = EmailMessage()
    message["From"] = "escalate@example.com"
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject
    message["Message-ID"] = "<t7.step1@escalate.example.com>"
    message.set_content("Ticket 7 is overdue.\n")
    return asyncio.run(
        aiosmtplib.send(
            message,
            sender="escalate@example.com",
            recipients=recipients,
            hostname=sink.host,
            port=sink.port,
            timeout=5,
        )
    )


def test_sink_records_envelope_and_headers(sink):
    assert sink.url == f"smtp://127.0.0.1:{sink.port}"

    send(sink, ["lead@example.com"])

    [mail] = sink.wait_for(1)
    assert mail.mail_from == "escalate@example.com"
    assert mail.rcpt_tos == ["lead@example.com"]
    assert mail.message["Subject"] == "Escalation: ticket 7"
    assert mail.message["Message-ID"] == "<t7.step1@escalate.example.com>"
    assert mail.message.get_content() == "Ticket 7 is overdue.\r\n"  # SMTP line endings
    assert b"\r\nSubject: Escalation: ticket 7\r\n" in mail.data
    assert mail.peer[0] == "127.0.0.1"
    assert (sink.attempts, sink.connections) == (1, 1)


def test_sink_tempfail_records_nothing(sink):
    sink.mode = "tempfail"

    with pytest.raises(aiosmtplib.SMTPDataError) as error:
        send(sink, ["lead@example.com"])

    assert error.value.code == 451
    assert sink.messages == []
    assert sink.attempts == 1


def test_sink_refuses_one_recipient(sink):
    sink.mode = "refuse_rcpt"
    sink.refused = {"gone@example.com"}

    refused, _ = send(sink, ["lead@example.com", "gone@example.com"])

    assert refused["gone@example.com"].code == 550
    [mail] = sink.wait_for(1)
    assert mail.rcpt_tos == ["lead@example.com"]


def test_sink_drop_after_data_is_ambiguous(sink):
    sink.mode = "drop_after_data"

    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        send(sink, ["lead@example.com"])

    # The client saw no 250, yet the mail arrived: a retry will duplicate it.
    assert [m.rcpt_tos for m in sink.messages] == [["lead@example.com"]]
