"""One delivery can never stop the outbox: a customer with a non-ASCII address (raw UTF-8 From,
accepted by ingest) is written to over SMTPUTF8 when the server offers it, and fails alone, for
good and with the reason, when it does not; any unexpected error in one delivery fails that
delivery and is counted, while the rest of the due mail goes out in the same run.

Real Dovecot, real aiosmtpd (with and without SMTPUTF8), real CLI; SQLite.
"""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from escalate.clock import parse_time
from escalate.config import parse_server_url
from escalate.ops.metrics import Metrics
from escalate.outbound import outbox
from escalate.store import db
from escalate.store.models import Delivery, Outbox

from tests.conftest import TEST_RULES

ACKNOWLEDGING_RULES = TEST_RULES + "acknowledge_customers: true\n"
NOW = "2026-11-02T09:05:00+00:00"


def utf8_mail(sender: str, subject: str) -> bytes:
    """What a client that writes raw UTF-8 headers (RFC 6532) sends: no encoded words."""
    return (f"From: José <{sender}>\r\nTo: support@example.com\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash(sender))}@client.example>\r\nDate: Mon, 02 Nov 2026 09:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThe invoice is wrong.\r\n"
            ).encode()


def customers(dovecot, mail, count: int) -> list[str]:
    """`count` ASCII customers, then José, each opening a ticket (so each is acknowledged)."""
    addresses = [f"shop{i}@customer.example" for i in range(count)]
    for address in addresses:
        dovecot.append(mail(sender=address, subject=f"Order {address} missing", body="Where is it?"))
    dovecot.append(utf8_mail("josé@example.es", "Factura incorrecta"))
    return addresses


def status(cli) -> dict:
    return json.loads(cli("status", "--json", expect=3).output)  # 3: no daemon runs beside these tests


@pytest.mark.parametrize("smtp_sink", [{"smtputf8": True}], indirect=True)
def test_a_non_ascii_customer_is_written_to_over_smtputf8(env, rules_file, dovecot, smtp_sink, mail, cli):
    rules_file(ACKNOWLEDGING_RULES)
    others = customers(dovecot, mail, 3)
    cli("run", "--once", "--now", NOW)
    received = {rcpt for m in smtp_sink.messages for rcpt in m.rcpt_tos}
    assert received == {*others, "josé@example.es"}
    [to_jose] = [m for m in smtp_sink.messages if m.rcpt_tos == ["josé@example.es"]]
    assert str(to_jose.message["To"]) == "josé@example.es"  # UTF-8 in the header, not a mangled encoded word
    assert status(cli)["outbox"] == {"queued": 0, "oldest_queued_age_seconds": None, "failed": 0}


@pytest.mark.parametrize("smtp_sink", [{"smtputf8": False}], indirect=True)
def test_without_smtputf8_only_that_customer_fails_and_says_why(env, rules_file, dovecot, smtp_sink, mail, cli):
    rules_file(ACKNOWLEDGING_RULES)
    others = customers(dovecot, mail, 17)
    cli("run", "--once", "--now", NOW)  # exit 0: one recipient's failure is not the daemon's
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == sorted(others)  # nobody waits behind José
    delivery = Delivery.get(Delivery.recipient == "josé@example.es")
    assert delivery.status == "failed" and "SMTPUTF8" in delivery.last_error
    assert status(cli)["outbox"]["failed"] == 1
    # for good: the next runs do not try again (a person may, with `outbox retry`)
    cli("run", "--once", "--now", "2026-11-02T10:05:00+00:00")
    assert Delivery.get(Delivery.recipient == "josé@example.es").attempts == 1
    # and the tier lead is told, once, which is the only new mail
    assert [m.rcpt_tos for m in smtp_sink.messages[len(others):]] == [["lead1@example.com"]]


def test_an_unexpected_error_in_one_delivery_fails_it_alone_and_is_counted(tmp_path, rules_file, smtp_sink):
    """A recipient that reached the database unchecked (`john smith@…`: aiosmtplib raises ValueError,
    not an SMTP error) among ordinary ones."""
    from escalate.outbound import notify
    from escalate.outbound.templates import Renderer
    from escalate.rules.loader import load_ruleset

    db.connect(f"sqlite:///{tmp_path / 'escalate.db'}")
    renderer = Renderer()
    ruleset = load_ruleset(rules_file(), template_names=renderer.names())
    now = parse_time(NOW)
    secret = b"unexpected-error-test-secret-0123456789"
    with db.write_transaction():
        for recipient in ("first@example.com", "john smith@example.com", "last@example.com"):
            notify.queue_refusal(recipient=recipient, commands=["#ack"], reason="test", ruleset=ruleset,
                                 renderer=renderer, secret=secret, now=now)
    url = parse_server_url("ESCALATE_SMTP_URL", smtp_sink.url, ("smtp",))
    result = outbox.send_due(url, now + timedelta(seconds=1), connections=1)  # one connection: the bad one is in the middle
    assert sorted(r for m in smtp_sink.messages for r in m.rcpt_tos) == ["first@example.com", "last@example.com"]
    assert (result.sent, result.failed) == (2, 1)
    bad = Delivery.get(Delivery.recipient == "john smith@example.com")
    assert bad.status == "failed" and "unexpected ValueError" in bad.last_error
    assert Outbox.get_by_id(bad.outbox_id).status == "failed"
    metrics = Metrics()
    assert metrics.registry.get_sample_value("escalate_outbox_failed") == 1


# -- SMTP down, login refused: `run --once` fails (exit 1) in one line, and nothing is lost ------------

def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("Error:")]


def test_run_once_exits_1_when_the_smtp_server_is_down(env, rules_file, dovecot, smtp_sink, mail, cli):
    rules_file(ACKNOWLEDGING_RULES)
    dovecot.append(mail(sender="shop@customer.example", subject="Order missing", body="Where is it?"))
    smtp_sink.stop()
    result = cli("run", "--once", "--now", NOW, expect=1)
    [line] = error_lines(result)
    assert "ESCALATE_SMTP_URL" in line and "stays queued" in line and "Traceback" not in result.output
    assert "1 new ticket" in result.output  # what the run did is still reported
    smtp_sink.start()
    cli("run", "--once", "--now", "2026-11-02T09:10:00+00:00")  # after the back-off: sent, nothing lost
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["shop@customer.example"]]


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)  # PostgreSQL: claims are leases
@pytest.mark.parametrize("smtp_sink", [{"login": ("escalate", "s3cret/pw")}], indirect=True)
def test_a_refused_login_stops_sending_until_fixed_and_says_so(env, rules_file, dovecot, smtp_sink, mail, cli):
    rules_file(ACKNOWLEDGING_RULES)
    dovecot.append(mail(sender="shop@customer.example", subject="Order missing", body="Where is it?"))
    smtp_sink.login = ("escalate", "rotated")  # the server's password changed; ours did not
    for minutes in (5, 30, 120):  # not retried as if temporary: no attempt is charged, however long
        result = cli("run", "--once", "--now", f"2026-11-02T{9 + minutes // 60:02d}:{minutes % 60:02d}:00+00:00",
                     expect=1)
        [line] = error_lines(result)
        assert "535" in line and "ESCALATE_SMTP_URL" in line and "s3cret" not in result.output
        delivery = Delivery.get()
        assert (delivery.status, delivery.attempts, delivery.lease_owner) == ("queued", 0, None)
    shown = cli("status", expect=3).output
    assert "PROBLEM smtp-login" in shown and "refused the login" in shown
    assert [p["name"] for p in status(cli)["problems"]] == ["smtp-login"]
    smtp_sink.login = ("escalate", "s3cret/pw")  # fixed
    cli("run", "--once", "--now", "2026-11-02T11:05:00+00:00")
    assert [m.rcpt_tos for m in smtp_sink.messages] == [["shop@customer.example"]]
    assert status(cli)["problems"] == [] and "PROBLEM" not in cli("status", expect=3).output


# -- bounded outgoing headers -----------------------------------------------------------------------

OUTLOOK_ID = "DB9PR08MB6588F0E6E4F1B2B0C6A2C1D4A3E92@DB9PR08MB6588.eurprd08.prod.outlook.com"  # 78 characters


def mail_with_subject_words(raw: bytes, phrase: str, times: int) -> bytes:
    """The mail with its Subject replaced by `phrase` repeated `times` times, one RFC 2047 encoded word per
    phrase on a folded line, as a mail client writes a long non-ASCII subject. (The email package's own folding
    of a 1 MB subject takes about 15 s of CPU: the test would measure the test, not escalate.)"""
    word = b"=?utf-8?b?" + base64.b64encode(phrase.encode("utf-8")) + b"?="
    head, body = raw.split(b"\n\n", 1)
    lines = [line for line in head.split(b"\n") if not line.startswith(b"Subject:")]
    subject = b"Subject: " + b"\n ".join([word] * times)
    return b"\n".join([*lines, subject]) + b"\n\n" + body


def test_a_huge_subject_is_cut_in_mail_but_kept_on_the_ticket_and_no_header_line_is_over_998(
        env, dovecot, smtp_sink, mail, cli):
    phrase = "Zahlung fehlgeschlagen, outage überall "
    dovecot.append(mail_with_subject_words(mail(sender="shop@customer.example", subject="placeholder",
                                                body="Checkout is down.", message_id=OUTLOOK_ID),
                                           phrase, 27_000))  # about 1 MB, not ASCII
    cli("run", "--once", "--now", "2026-11-02T09:00:00+00:00")
    cli("run", "--once", "--now", "2026-11-02T09:20:00+00:00")  # urgent, no first response: tier 1
    [sent] = smtp_sink.messages
    head = sent.data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert max(len(line) for line in head) <= 998
    assert len(head) < 30  # a 1 MB subject was 2,614 header lines
    shown = " ".join(str(sent.message["Subject"]).split())  # the reader's decoding may double a space
    assert shown.startswith("[T-1] ") and "Zahlung fehlgeschlagen" in shown and len(shown) <= 160
    ticket = json.loads(cli("tickets", "show", "T-1", "--json").output)
    assert len(ticket["subject"]) > 10_000  # the full subject stays on the ticket
    # threading survives a non-ASCII subject: the customer's Outlook Message-ID is not turned into encoded words
    assert str(sent.message["In-Reply-To"]) == f"<{OUTLOOK_ID}>"
    assert f"<{OUTLOOK_ID}>" in str(sent.message["References"]).split()
