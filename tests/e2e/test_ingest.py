"""Ingest against real Dovecot: mail is marked on the server only after it is committed, a
renumbered folder or a second client changes nothing, poison and oversized mail are quarantined
once, Message-ID collisions are kept apart, and history comes in with `escalate import`."""

from __future__ import annotations

import json
import logging
import mailbox as stdlib_mailbox
import resource

import pytest
from escalate.clock import parse_time
from escalate.config import load_settings
from escalate.ingest.mailbox import Mailbox
from escalate.ingest.pipeline import IngestResult, ingest_folder
from escalate.ingest.poller import options_for
from escalate.ops.service import open_app
from escalate.store import db
from escalate.testing.loopback import Dovecot
from imapclient import IMAPClient

from .ingest_support import NOW, append_many, assert_ingest_invariants, cycle, rows, run_once, scalar, server_count, server_flags


def customer_mails(mail, count: int, prefix: str = "m") -> list[bytes]:
    return [mail(sender=f"{prefix}-customer{n}@example.net", subject=f"Question {n} about invoices", body=f"Question {n}.",
                 message_id=f"{prefix}{n}@example.net") for n in range(count)]


# --- the server is told only after the commit; the admin chooses leave, flag or move --------

def test_processed_mail_is_left_alone_by_default(cli, dovecot: Dovecot, mail):
    append_many(dovecot, customer_mails(mail, 3))
    cycle(cli)
    assert all(b"\\Seen" not in flags for flags in server_flags(dovecot).values())


def test_flag_marks_seen_only_after_the_commit(env, cli, dovecot: Dovecot, mail):
    env["ESCALATE_PROCESSED"] = "flag"
    append_many(dovecot, customer_mails(mail, 5))
    # killed after the commit of the 2nd message, before anything was flagged
    crashed = run_once(env, extra={"ESCALATE_CRASHPOINT": "after-commit:2"})
    assert crashed.returncode == 137, crashed.stderr
    assert scalar(env, "SELECT count(*) FROM message") == 5  # one batch, committed
    assert all(b"\\Seen" not in flags for flags in server_flags(dovecot).values())
    # killed inside the transaction: nothing stored, nothing flagged
    append_many(dovecot, customer_mails(mail, 2, prefix="late"))
    crashed = run_once(env, extra={"ESCALATE_CRASHPOINT": "in-txn-before-commit:1"})
    assert crashed.returncode == 137, crashed.stderr
    assert scalar(env, "SELECT count(*) FROM message") == 5
    cycle(cli)  # the restart (in-process: only the killed runs need a process of their own)
    assert all(b"\\Seen" in flags for flags in server_flags(dovecot).values())
    assert_ingest_invariants(env, message_ids={f"m{n}@example.net" for n in range(5)} | {"late0@example.net", "late1@example.net"},
                             tickets=7)


def test_move_takes_mail_out_of_the_inbox_after_the_commit(env, cli, dovecot: Dovecot, mail):
    env["ESCALATE_PROCESSED"] = "move:Processed"
    append_many(dovecot, customer_mails(mail, 4))
    crashed = run_once(env, extra={"ESCALATE_CRASHPOINT": "after-flag-before-checkpoint:1"})
    assert crashed.returncode == 137, crashed.stderr
    assert server_count(dovecot, "Processed") == 4  # moved, but the mark checkpoint was not written
    append_many(dovecot, customer_mails(mail, 1, prefix="after"))
    cycle(cli)
    assert server_count(dovecot, "INBOX") == 0 and server_count(dovecot, "Processed") == 5
    assert_ingest_invariants(env, tickets=5)


@pytest.mark.parametrize("crashpoint", ["after-fetch:3", "after-parse:3", "in-txn-before-commit:3", "after-commit:3",
                                        "after-flag-before-checkpoint:1"])
@pytest.mark.chaos
def test_ingest_crashpoints_lose_and_duplicate_nothing(crashpoint, env, cli, dovecot: Dovecot, mail):
    """Crash points during ingest, with flagging on: after the restart every mail is stored
    once, and every mail on the server is flagged."""
    env["ESCALATE_PROCESSED"] = "flag"
    append_many(dovecot, customer_mails(mail, 5) + [mail(sender="m-customer0@example.net", subject="Re: Question 0 about invoices",
                                                         body="More.", message_id="r0@example.net", in_reply_to="m0@example.net")])
    crashed = run_once(env, extra={"ESCALATE_CRASHPOINT": crashpoint})
    assert crashed.returncode == 137, crashed.stderr
    cycle(cli)  # the restart, and one more run after it (in-process: only the killed run needs a process)
    cycle(cli)
    assert_ingest_invariants(env, message_ids={f"m{n}@example.net" for n in range(5)} | {"r0@example.net"}, tickets=5)
    assert all(b"\\Seen" in flags for flags in server_flags(dovecot).values())


# --- UIDVALIDITY change -----------------------------------------------------------------------

def test_uidvalidity_change_rescans_without_storing_twice(cli, env, dovecot: Dovecot, mail):
    append_many(dovecot, customer_mails(mail, 30))
    assert len(cycle(cli)["tickets_created"]) == 30
    dovecot.doveadm("mailbox", "update", "-u", "support", "--uid-validity", "4242", "INBOX")
    again = cycle(cli)
    assert again["tickets_created"] == [] and again["ingested"] == {"duplicate": 30}
    events = rows(env, "SELECT detail FROM event WHERE action = 'uidvalidity-changed'")
    assert len(events) == 1 and json.loads(events[0][0])["new"] == 4242
    assert_ingest_invariants(env, tickets=30)


def test_folder_deleted_and_refilled_with_the_same_mail_stores_nothing_new(cli, env, dovecot: Dovecot, mail):
    raws = customer_mails(mail, 20)
    append_many(dovecot, raws)
    cycle(cli)
    with IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10) as client:
        client.login("support", dovecot.users["support"])
        client.create_folder("Tmp")
        client.select_folder("Tmp")  # INBOX cannot be deleted; empty it and let its UIDVALIDITY change
        client.select_folder("INBOX")
        client.delete_messages(client.search("ALL"))
        client.expunge()
    dovecot.doveadm("mailbox", "update", "-u", "support", "--uid-validity", "777", "INBOX")
    append_many(dovecot, raws)
    assert cycle(cli)["tickets_created"] == []
    assert scalar(env, "SELECT count(*) FROM event WHERE action = 'uidvalidity-changed'") == 1
    assert_ingest_invariants(env, tickets=20)


# --- another client expunges mail while we fetch -----------------------------------------------

class InterferedMailbox(Mailbox):
    """A real mailbox session; between our SEARCH and FETCH a second, real client expunges mail."""

    def __init__(self, *args, dovecot: Dovecot, victims: list[int], **kwargs):
        super().__init__(*args, **kwargs)
        self.dovecot, self.victims = dovecot, victims

    def uids_after(self, last_uid: int) -> list[int]:
        uids = super().uids_after(last_uid)
        with IMAPClient(self.dovecot.host, self.dovecot.port, ssl=False, timeout=10) as other:
            other.login("support", self.dovecot.users["support"])
            other.select_folder("INBOX")
            other.delete_messages(self.victims)
            other.expunge()
        return uids


def test_a_foreign_client_expunging_mid_fetch_does_not_crash_ingest(env, dovecot: Dovecot, mail, caplog):
    caplog.set_level(logging.INFO, logger="escalate.ingest.mailbox")
    append_many(dovecot, customer_mails(mail, 50))
    victims = list(range(1, 51, 5))  # 20%
    app = open_app(load_settings(env))
    result = IngestResult()
    with InterferedMailbox(app.settings.imap, dovecot=dovecot, victims=victims) as mailbox:
        ingest_folder(mailbox, "INBOX", app.ruleset, app.renderer, app.secret, parse_time(NOW),
                      result, options_for(app.settings))
    db.close()
    assert result.outcomes == {"ticket": 40}
    gone = [r for r in caplog.records if "vanished" in r.getMessage() or "expunged" in r.getMessage()]
    assert len(gone) == len(victims)  # each missing UID logged once
    assert_ingest_invariants(env, tickets=40)


# --- poison and oversized mail ------------------------------------------------------------

POISON = [
    b"\r\n\r\nno header block at all\r\n",
    b"   \r\n",
    b"this is not a mail, just a line of text without any colon\r\n",
    b"\x01\x02\x03 binary noise \xff\xfe\r\n",  # (Dovecot turns NUL into 0x80 on APPEND)
    b"\r\n",
]


def test_poison_mail_is_quarantined_once_and_good_mail_flows(cli, env, dovecot: Dovecot, mail):
    good = customer_mails(mail, 100)
    mixed = good[:30] + POISON[:2] + good[30:60] + POISON[2:] + good[60:]
    append_many(dovecot, mixed)
    first = cycle(cli)
    assert first["ingested"] == {"ticket": 100, "quarantined": 5}
    assert cycle(cli)["ingested"] == {}  # not re-fetched on the next poll
    listed = json.loads(cli("quarantine", "list", "--json").output)
    assert len(listed) == 5 and all(set(item) >= {"id", "reason", "received_at", "folder", "uid"} for item in listed)
    stored = {bytes(raw) for (raw,) in rows(env, "SELECT raw FROM quarantine")}
    assert stored == set(POISON)  # the raw bytes, as they were
    shown = json.loads(cli("quarantine", "show", str(listed[0]["id"]), "--json").output)
    assert shown["reason"] and shown["status"] == "held"
    raw = cli("quarantine", "show", str(listed[0]["id"]), "--raw").stdout_bytes
    assert raw == bytes(rows(env, "SELECT raw FROM quarantine WHERE id = ?", listed[0]["id"])[0][0])
    # retrying cannot make them parse: they stay held, with the new reason, and nothing else happens
    retried = cli("quarantine", "retry").output
    assert retried.count("still failing") == 5
    assert scalar(env, "SELECT count(*) FROM ticket") == 100
    cli("quarantine", "show", "9999", expect=2)


def test_quarantine_retry_processes_a_fixed_mail_once(cli, env, dovecot: Dovecot, mail):
    big = mail(sender="carl@customer.example", subject="Logs attached", body="x" * 40_000, message_id="big@example.net")
    env["ESCALATE_MAX_MESSAGE_BYTES"] = "20000"
    dovecot.append(big)
    assert cycle(cli)["ingested"] == {"quarantined": 1}
    [(record_id, reason)] = rows(env, "SELECT id, reason FROM quarantine")
    assert reason.startswith("too large")
    env["ESCALATE_MAX_MESSAGE_BYTES"] = "1000000"  # the admin raises the limit
    # the quarantine kept only the headers of an oversized mail: retry stores what it has, once
    out = cli("quarantine", "retry", str(record_id)).output
    assert f"{record_id}: ticket T-1" in out
    assert "already retried" in cli("quarantine", "retry", str(record_id)).output
    assert scalar(env, "SELECT count(*) FROM ticket") == 1


def test_oversized_mail_is_quarantined_with_headers_and_bounded_memory(cli, env, dovecot: Dovecot, mail):
    env["ESCALATE_MAX_MESSAGE_BYTES"] = str(4 * 1024 * 1024)
    size = 12 * 1024 * 1024
    big = mail(sender="carl@customer.example", subject="Huge core dump", body="A" * 76 + "\n", message_id="huge@example.net")
    big = big.rstrip(b"\n") + b"\n" + (b"B" * 76 + b"\n") * (size // 77)
    dovecot.append(big)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result = cycle(cli)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert result["ingested"] == {"quarantined": 1}
    assert after - before <= 3 * size
    [(reason, raw)] = rows(env, "SELECT reason, raw FROM quarantine")
    assert reason.startswith("too large") and b"Subject: Huge core dump" in raw and len(raw) < 10_000
    assert scalar(env, "SELECT count(*) FROM outbox") == 0  # no auto-reply


# --- Message-ID collisions ---------------------------------------------------------------------

def test_same_message_id_with_another_body_is_kept_and_flagged(cli, env, dovecot: Dovecot, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Printer", body="First body.", message_id="same@example.net"))
    dovecot.append(mail(sender="eve@other.example", subject="Other topic", body="Another body.", message_id="same@example.net"))
    no_id = b"From: ned@example.org\r\nSubject: no id\r\nDate: Mon, 02 Nov 2026 09:00:00 +0000\r\n\r\nhello\r\n"
    dovecot.append(no_id)
    dovecot.append(no_id)  # sent twice
    result = cycle(cli)
    assert result["ingested"] == {"ticket": 3, "duplicate": 1}
    collided = rows(env, "SELECT collision, defects FROM message WHERE message_id = 'same@example.net' ORDER BY id")
    assert [c for c, _ in collided] == [0, 1] and "message-id collision" in collided[1][1]
    assert scalar(env, "SELECT count(*) FROM event WHERE action = 'message-id-collision'") == 1
    assert scalar(env, "SELECT count(*) FROM message WHERE message_id IS NULL") == 1
    # the same mail again, from another folder with other transport headers: a duplicate, not a collision
    dovecot.append(b"Received: from relay2\r\n" + mail(sender="carl@customer.example", subject="Printer", body="First body.",
                                                       message_id="same@example.net"), folder="Archive")
    env["ESCALATE_IMAP_URL"] = dovecot.url() + ",Archive"
    assert cycle(cli)["ingested"] == {"duplicate": 1}


def test_a_mail_is_a_duplicate_only_when_its_whole_identity_is_the_same(cli, env, dovecot: Dovecot, mail):
    """The same Message-ID and body under another From or Subject, or two Message-IDs alike in their
    first 998 characters, are different mails: each is stored (flagged), none silently dropped."""
    body = "The export is empty."
    dovecot.append(mail(sender="carl@customer.example", subject="Export", body=body, message_id="reused@example.net"))
    dovecot.append(mail(sender="eve@other.example", subject="Export", body=body, message_id="reused@example.net"))
    dovecot.append(mail(sender="carl@customer.example", subject="Export, again", body=body,
                        message_id="reused@example.net"))
    long_prefix = "x" * 1100
    dovecot.append(mail(sender="fay@customer.example", subject="Long", body=body, message_id=f"{long_prefix}a@example.net"))
    dovecot.append(mail(sender="fay@customer.example", subject="Long", body=body, message_id=f"{long_prefix}b@example.net"))
    # a true collision of the key: every identity header the same, another body
    same_headers = dict(sender="gus@customer.example", subject="Invoice", message_id="gus-1@customer.example")
    dovecot.append(mail(body="Invoice 1 is wrong.", **same_headers))
    dovecot.append(mail(body="Invoice 2 is wrong.", **same_headers))
    result = cycle(cli)
    assert sum(result["ingested"].values()) == 7 and "duplicate" not in result["ingested"], result["ingested"]
    assert scalar(env, "SELECT count(*) FROM message") == 7
    flagged = rows(env, "SELECT from_addr, subject FROM message WHERE collision = 1 ORDER BY id")
    assert flagged == [("eve@other.example", "Export"), ("carl@customer.example", "Export, again"),
                       ("fay@customer.example", "Long"), ("gus@customer.example", "Invoice")]
    keys = [k for (k,) in rows(env, "SELECT dedupe_key FROM message")]
    assert len(set(keys)) == 7 and max(len(k) for k in keys) < 255  # a fixed-size key, whatever the Message-ID
    # each of them delivered again (another relay in front): all duplicates now
    for raw in [mail(sender="eve@other.example", subject="Export", body=body, message_id="reused@example.net"),
                mail(body="Invoice 2 is wrong.", **same_headers),
                mail(sender="fay@customer.example", subject="Long", body=body, message_id=f"{long_prefix}b@example.net")]:
        dovecot.append(b"Received: from relay3.example by mx.example\r\n" + raw)
    assert cycle(cli)["ingested"] == {"duplicate": 3}


# --- several folders, each on its own schedule -------------------------------------------------------

def test_several_folders_are_ingested(cli, env, dovecot: Dovecot, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Broken login", body="Cannot log in.", message_id="c@x.example"))
    dovecot.append(mail(sender="alice@example.com", subject="Re: Broken login", body="Reset it for you.",
                        message_id="a@x.example", in_reply_to="c@x.example", to="carl@customer.example"), folder="Sent")
    env["ESCALATE_IMAP_URL"] = dovecot.url() + ",Sent"
    env["ESCALATE_FOLDER_SCHEDULES"] = "Sent=300"
    result = cycle(cli)
    assert result["ingested"] == {"ticket": 1, "reply": 1}
    kinds = rows(env, "SELECT folder, kind FROM message ORDER BY id")
    assert kinds == [("INBOX", "customer"), ("Sent", "agent")]


# --- attachments (names sanitised) and import ------------------------------------------------------

def test_attachment_contents_are_stored_under_safe_names(cli, env, dovecot: Dovecot, tmp_path):
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "carl@customer.example", "support@example.com", "Files"
    message["Message-ID"] = "<files@example.net>"
    message.set_content("See attached.")
    for name in ("../../etc/passwd", "CON", "a\x00b.txt", "x" * 10_000 + ".txt", "..\\..\\win.ini"):
        message.add_attachment(b"payload of " + name[:20].encode("utf-8", "replace"), maintype="application",
                               subtype="octet-stream", filename=name)
    raw = message.as_bytes().replace(b'filename="CON"', b"filename*=UTF-8''%2E%2E%2F%2E%2E%2Fetc%2Fshadow")
    dovecot.append(raw)
    env["ESCALATE_ATTACHMENTS_DIR"] = str(tmp_path / "state" / "attachments")
    cycle(cli)
    stored = rows(env, "SELECT filename, stored_path, stored_offset, size FROM attachment ORDER BY id")
    assert len(stored) == 5
    root = (tmp_path / "state" / "attachments").resolve()
    for filename, path, offset, size in stored:
        assert filename is None or ("/" not in filename and "\\" not in filename and "\x00" not in filename
                                    and len(filename) <= 255)
        target = (root / path).resolve()
        assert root in target.parents
        assert target.read_bytes()[offset:offset + size].startswith(b"payload of ")
    written = {p.resolve() for p in tmp_path.rglob("*") if p.is_file()}
    outside = {p for p in written if root not in p.parents and p.suffix not in (".db", ".db-wal", ".db-shm", ".yaml")
               and "dovecot" not in p.parts and not p.name.endswith((".lock", "-wal", "-shm"))}
    assert outside == set()


def test_import_from_mbox_and_maildir(cli, env, tmp_path, mail):
    mbox_path = tmp_path / "history.mbox"
    box = stdlib_mailbox.mbox(str(mbox_path))
    for raw in customer_mails(mail, 12, prefix="old"):
        box.add(raw)
    box.flush()
    box.close()
    out = cli("import", str(mbox_path), "--json").output
    summary = json.loads(out[out.index("{"):])
    assert {k: summary[k] for k in ("messages", "outcomes", "tickets_created")} == {
        "messages": 12, "outcomes": {"ticket": 12}, "tickets_created": 12}
    maildir = stdlib_mailbox.Maildir(str(tmp_path / "Maildir"))
    for raw in customer_mails(mail, 12, prefix="old")[:3] + customer_mails(mail, 2, prefix="new"):
        maildir.add(raw)
    out = cli("import", str(tmp_path / "Maildir")).output
    assert "imported 5 messages" in out and "3 duplicate" in out and "2 ticket" in out
    cli("import", str(tmp_path / "rules.yaml"), expect=2)  # not a mail store: a clear error


def test_attachment_contents_that_cannot_be_written_hold_the_mail_back_until_they_can(env, cli, dovecot: Dovecot,
                                                                                      tmp_path):
    """Like a full disk: the batch is not committed and nothing is quarantined; the mail is
    stored, with its contents, by the first run that can write them."""
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "carl@customer.example", "support@example.com", "Log"
    message["Message-ID"] = "<log@example.net>"
    message.set_content("The log is attached.")
    message.add_attachment(b"ERROR timeout\n" * 500, maintype="text", subtype="plain", filename="server.log")
    dovecot.append(message.as_bytes())
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the attachments directory should be")
    failed = run_once(env, extra={"ESCALATE_ATTACHMENTS_DIR": str(blocked / "attachments")})
    assert failed.returncode != 0 and "attachment" in failed.stderr
    assert scalar(env, "SELECT count(*) FROM message") == 0 and scalar(env, "SELECT count(*) FROM quarantine") == 0
    env["ESCALATE_ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    cycle(cli)
    [(path, offset, size)] = rows(env, "SELECT stored_path, stored_offset, size FROM attachment")
    contents = (tmp_path / "attachments" / path).read_bytes()[offset:offset + size]
    assert contents == b"ERROR timeout\n" * 500 and size == 7_000


def _mail_with_attachment(number: int, payload: bytes) -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"], message["To"] = f"carl{number}@customer.example", "support@example.com"
    message["Subject"], message["Message-ID"] = f"Logs {number}", f"<logs{number}@example.net>"
    message.set_content("The log is attached.")
    message.add_attachment(payload, maintype="application", subtype="octet-stream", filename=f"run{number}.log")
    return message.as_bytes()


@pytest.mark.chaos
@pytest.mark.parametrize("crashpoint", ["in-txn-before-commit:3", "after-commit:3"])
def test_a_crash_around_the_commit_leaves_no_row_pointing_at_missing_attachment_contents(crashpoint, env, cli,
                                                                                         dovecot: Dovecot, tmp_path):
    """The batch's pack file is sealed before the commit: after a kill on either side of it and a
    restart, every attachment row reads back its own contents, each stored once."""
    payloads = {n: f"run {n}: ERROR timeout\n".encode() * (200 + n) for n in range(5)}
    append_many(dovecot, [_mail_with_attachment(n, payload) for n, payload in payloads.items()])
    env["ESCALATE_ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    crashed = run_once(env, extra={"ESCALATE_CRASHPOINT": crashpoint})
    assert crashed.returncode == 137, crashed.stderr
    committed = scalar(env, "SELECT count(*) FROM attachment")
    assert committed == (0 if crashpoint.startswith("in-txn") else 5)
    cycle(cli)
    stored = rows(env, "SELECT filename, stored_path, stored_offset, size FROM attachment ORDER BY filename")
    assert [filename for filename, *_ in stored] == [f"run{n}.log" for n in range(5)]
    for (_filename, path, offset, size), (_n, payload) in zip(stored, payloads.items()):
        assert (tmp_path / "attachments" / path).read_bytes()[offset:offset + size] == payload
    assert_ingest_invariants(env, tickets=5)


def test_a_rescan_writes_no_attachment_contents_again(cli, env, dovecot: Dovecot, tmp_path):
    append_many(dovecot, [_mail_with_attachment(n, b"same screenshot bytes" * 100) for n in range(3)])
    env["ESCALATE_ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    cycle(cli)
    packs = sorted((tmp_path / "attachments").rglob("*"))
    assert [p.suffix for p in packs if p.is_file()] == [".pack"]  # three mails, the contents once
    dovecot.doveadm("mailbox", "update", "-u", "support", "--uid-validity", "4343", "INBOX")
    assert cycle(cli)["ingested"] == {"duplicate": 3}
    assert sorted((tmp_path / "attachments").rglob("*")) == packs


def ingest_in_process(env: dict[str, str]) -> IngestResult:
    """One drain of INBOX in this process (so monkeypatch and caplog reach it)."""
    app = open_app(load_settings(env))
    result = IngestResult()
    with Mailbox(app.settings.imap) as mailbox:
        ingest_folder(mailbox, "INBOX", app.ruleset, app.renderer, app.secret, parse_time(NOW), result,
                      options_for(app.settings))
    db.close()
    return result


def test_fetched_mail_stays_out_of_the_imap_debug_log(env, dovecot: Dovecot, mail, caplog):
    """imapclient turns imaplib's debug output on and routes it to the `imapclient.imaplib`
    logger: with DEBUG on, every fetched mail would be logged whole (and formatted even when not)."""
    append_many(dovecot, [mail(sender="dana@customer.example", subject="Private", body="my card is 4111-1111",
                               message_id="private@example.net")])
    caplog.set_level(logging.DEBUG, logger="imapclient")
    result = ingest_in_process(env)
    assert result.outcomes == {"ticket": 1}
    assert any(r.name.startswith("imapclient") for r in caplog.records)  # the library still logs its commands
    assert not [r for r in caplog.records if "4111-1111" in r.getMessage()]


# --- fetching the next batch while one is stored --------------------------------------------------

def test_a_batch_fetched_ahead_is_not_marked_until_its_own_commit(env, cli, dovecot: Dovecot, mail):
    """Killed after the first batch's commit, with the second batch already fetched: the first
    batch is stored and unmarked (repaired next run), the second neither stored nor marked."""
    env["ESCALATE_PROCESSED"] = "flag"
    append_many(dovecot, customer_mails(mail, 150))
    crashed = run_once(env, extra={"ESCALATE_CRASHPOINT": "after-commit:100"})
    assert crashed.returncode == 137, crashed.stderr
    assert scalar(env, "SELECT count(*) FROM message") == 100
    assert all(b"\\Seen" not in flags for flags in server_flags(dovecot).values())
    cycle(cli)
    assert all(b"\\Seen" in flags for flags in server_flags(dovecot).values())
    assert_ingest_invariants(env, message_ids={f"m{n}@example.net" for n in range(150)}, tickets=150)


def test_a_failed_batch_stops_the_fetching_ahead_and_leaves_the_session_usable(env, dovecot: Dovecot, mail,
                                                                                monkeypatch):
    """The database refusing a batch (like a full disk) ends the drain with the error; the thread that was
    fetching the next batch is gone and the IMAP session answers the next command cleanly."""
    import threading

    import peewee
    from escalate.ingest import pipeline as ingest

    append_many(dovecot, customer_mails(mail, 250))
    app = open_app(load_settings(env))
    stored_batches = []
    real_store_batch = ingest.store_batch

    def store_batch(batch, *args, **kwargs):
        if stored_batches:
            raise peewee.OperationalError("database is locked")
        stored_batches.append(len(batch))
        return real_store_batch(batch, *args, **kwargs)

    monkeypatch.setattr(ingest, "store_batch", store_batch)
    with Mailbox(app.settings.imap) as mailbox:
        with pytest.raises(peewee.OperationalError):
            ingest_folder(mailbox, "INBOX", app.ruleset, app.renderer, app.secret, parse_time(NOW), IngestResult(),
                          options_for(app.settings))
        assert [t for t in threading.enumerate() if t.name == "escalate-fetch-ahead"] == []
        assert mailbox.uids_after(0) == list(range(1, 251))
    db.close()
    assert stored_batches == [100] and scalar(env, "SELECT count(*) FROM message") == 100


def test_a_mail_that_fails_after_recording_events_takes_only_its_own_events_with_it(env, dovecot: Dovecot, mail,
                                                                                    monkeypatch):
    """A batch's audit events are written together before its commit; the mail whose savepoint is
    undone (here: after its ticket's "created" event) leaves none behind, its neighbours keep theirs."""
    from escalate.ingest import pipeline as ingest
    from escalate.tickets import lifecycle as tickets

    append_many(dovecot, customer_mails(mail, 3))
    real_add_message = tickets.add_message

    def add_message(ticket, message, now, **batch):
        if message.message_id == "m1@example.net":
            raise RuntimeError("a bug met by this mail only")
        return real_add_message(ticket, message, now, **batch)

    monkeypatch.setattr(ingest.tickets, "add_message", add_message)
    result = ingest_in_process(env)
    assert result.outcomes == {"ticket": 2, "quarantined": 1}
    events = rows(env, "SELECT t.subject, e.action FROM event e JOIN ticket t ON t.id = e.ticket_id ORDER BY e.id")
    assert events == [("Question 0 about invoices", "created"), ("Question 0 about invoices", "message"),
                      ("Question 2 about invoices", "created"), ("Question 2 about invoices", "message")]
    assert scalar(env, "SELECT count(*) FROM event WHERE ticket_id IS NOT NULL AND ticket_id NOT IN "
                       "(SELECT id FROM ticket)") == 0
