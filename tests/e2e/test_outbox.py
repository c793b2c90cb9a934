"""The outbox against a real aiosmtpd server with its fault modes (docs/reliability.md,
"Notifications out").

Notifications are queued by the real notify code into a real SQLite database and sent by the real
sender; time moves through the `now` parameter, never by sleeping. The sink records every envelope
and every byte it accepted, which is what the assertions read.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from escalate.config import parse_server_url
from escalate.mail import verp
from escalate.ops import problems
from escalate.outbound import notify, outbox, settle
from escalate.outbound.templates import Renderer
from escalate.rules.ladder import MailStep
from escalate.rules.loader import load_ruleset
from escalate.store import db
from escalate.store.models import Delivery, Escalation, Outbox
from escalate.testing.loopback import SmtpSink
from escalate.tickets import lifecycle as tickets

from . import soak
from .daemon_process import wait_until

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
DUE = T0 + timedelta(minutes=15)
SECRET = b"outbox-test-secret-0123456789abcdef"


class World:
    def __init__(self, tmp_path: Path, rules_file, sink: SmtpSink):
        self.db_url = f"sqlite:///{tmp_path / 'escalate.db'}"  # the file the `env` fixture names
        db.connect(self.db_url)
        self.renderer = Renderer()
        self.rules_path = rules_file()
        self.ruleset = load_ruleset(self.rules_path, template_names=self.renderer.names())
        self.sink = sink
        self.url = parse_server_url("ESCALATE_SMTP_URL", sink.url, ("smtp",))

    def escalate(self, count: int, *, subject: str = "Checkout down", now: datetime = DUE) -> list[Outbox]:
        """`count` urgent tickets escalated to tier 1: one notification each, queued by notify."""
        rule = self.ruleset.rule("urgent-no-first-response")
        tier = self.ruleset.tier(1)
        rows = []
        with db.write_transaction():
            for i in range(count):
                ticket = tickets.open_ticket(subject=f"{subject} {i}", normalised_subject=f"checkout {i}",
                                             requester=f"shop{i}@customer.example", requester_name="",
                                             severity="urgent", reference_prefix="T", now=T0, reason="test")
                escalation = Escalation.create(ticket=ticket, rule=rule.name, tier=1, step=0, started_at=DUE,
                                               last_step_due_at=DUE)
                rows.append(notify.queue_ladder_mail(
                    ticket=ticket, escalation=escalation,
                    step=MailStep(kind="escalation", tier=tier.level, step=0, due_at=DUE, rule=rule.name,
                                  reasons=(rule.name,)),
                    next_step="A reminder follows.", ruleset=self.ruleset, renderer=self.renderer, secret=SECRET,
                    now=now))
        return rows

    def send(self, now: datetime, **options) -> outbox.SendResult:
        options.setdefault("on_failed", notify.lead_notifier(self.ruleset, self.renderer, SECRET))
        return outbox.send_due(self.url, now, **options)

    def send_unreachable(self, now: datetime) -> outbox.SendResult:
        """A run while the server is down: it raises (a runtime failure), having recorded the retries."""
        with pytest.raises(outbox.SmtpUnavailable) as down:
            self.send(now)
        return down.value.result

    @staticmethod
    def statuses() -> dict[str, int]:
        return dict(collections.Counter(row.status for row in Outbox.select(Outbox.status)))


@pytest.fixture
def world(tmp_path, rules_file, smtp_sink) -> World:
    return World(tmp_path, rules_file, smtp_sink)


def message_ids(sink: SmtpSink) -> list[str]:
    return [m.message["Message-ID"] for m in sink.messages]


def test_smtp_down_five_minutes_then_everything_delivered_once(world):
    world.escalate(200)
    world.sink.stop()
    now = DUE
    first = world.send_unreachable(now)
    assert first.sent == 0 and first.retrying == 200 and first.connections == 0
    assert "connect" in first.errors[0].lower()
    row = Outbox.get_by_id(1)
    assert row.status == "queued" and row.attempts == 1 and "connect" in row.last_error
    assert row.next_attempt_at - now == timedelta(seconds=30)  # first retry ≤ 30 s
    # keep retrying while the server is down: the back-off doubles
    waits = []
    for _ in range(3):
        now = Outbox.get_by_id(1).next_attempt_at
        assert world.send_unreachable(now).sent == 0
        waits.append(Outbox.get_by_id(1).next_attempt_at - now)
    assert waits == [timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4)]
    assert now - DUE < timedelta(minutes=5)
    world.sink.start()
    # nothing is sent before its back-off has passed
    assert world.send(now + timedelta(minutes=1)).sent == 0
    recovered = world.send(now + timedelta(minutes=4))
    assert recovered.sent == 200 and recovered.connections <= 8
    ids = message_ids(world.sink)
    assert len(ids) == 200 and len(set(ids)) == 200  # 100 % delivered, 0 duplicates
    assert world.statuses() == {"sent": 200}
    assert {d.attempts for d in Delivery.select()} == {5}  # four failed attempts recorded, then the send


def test_451_for_thirty_minutes_backs_off_capped_then_delivers_once(world):
    world.escalate(5)
    world.sink.mode = "tempfail"
    now, waits = DUE, []
    while now < DUE + timedelta(minutes=30):
        result = world.send(now)
        assert result.sent == 0 and result.retrying == 5
        row = Outbox.get_by_id(1)
        waits.append(row.next_attempt_at - now)
        now = row.next_attempt_at
    assert "451" in Outbox.get_by_id(1).last_error
    assert max(waits) == settle.MAX_RETRY == timedelta(minutes=10)  # the cap holds
    assert waits[:3] == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2)]
    world.sink.mode = "accept"
    assert world.send(now).sent == 5
    assert len(world.sink.messages) == 5 and len(set(message_ids(world.sink))) == 5
    assert world.sink.attempts == 5 * (len(waits) + 1)  # exactly one DATA per attempt, no storm


def test_554_fails_once_with_code_and_text_and_tells_the_lead_once(world):
    [row] = world.escalate(1)
    world.sink.mode = "reject"
    result = world.send(DUE)
    assert result.failed == 1
    failed = Outbox.get_by_id(row.id)
    assert failed.status == "failed" and failed.attempts == 1
    assert "554" in failed.last_error and "message rejected" in failed.last_error
    notices = list(Outbox.select().where(Outbox.kind == "delivery-failure"))
    assert len(notices) == 1 and notices[0].recipients == ["lead1@example.com"]
    assert f"#{row.id}" in notices[0].subject
    # later sends retry nothing and tell nobody again: no retry storm (the notice itself is
    # rejected by the same server once, and a failed notice never causes another)
    failures = [world.send(DUE + timedelta(minutes=minutes)).failed for minutes in (1, 10, 60, 600)]
    assert failures == [1, 0, 0, 0]
    assert world.sink.attempts == 2
    assert Outbox.select().where(Outbox.kind == "delivery-failure").count() == 1
    # once the server accepts again, the lead's notice (not the storm) goes out after a retry
    world.sink.mode = "accept"
    assert outbox.retry([notices[0].id], DUE + timedelta(hours=11)) == 1
    assert world.send(DUE + timedelta(hours=11)).sent == 1
    [notice] = world.sink.messages
    assert notice.rcpt_tos == ["lead1@example.com"]
    assert "554" in notice.message.get_body(("plain",)).get_content()


def test_one_refused_recipient_fails_alone_and_the_others_get_it_once(world):
    row = notify.queue_digest(recipients=["ann@example.org", "ben@example.org", "cy@example.org"],
                              period_start=T0, period_end=T0 + timedelta(days=1), ruleset=world.ruleset,
                              renderer=world.renderer, secret=SECRET, now=T0 + timedelta(days=1))
    world.sink.mode = "refuse_rcpt"
    world.sink.refused = {"ben@example.org"}
    result = world.send(T0 + timedelta(days=1))
    assert result.sent == 2
    assert sorted(r for m in world.sink.messages for r in m.rcpt_tos) == ["ann@example.org", "cy@example.org"]
    ben = Delivery.get((Delivery.outbox == row.id) & (Delivery.recipient == "ben@example.org"))
    assert ben.status == "refused" and ben.code == 550 and "recipient refused" in ben.last_error
    assert Outbox.get_by_id(row.id).status == "failed"
    # a person fixes ben's mailbox and retries the row: only ben gets it, never ann or cy again
    world.sink.mode = "accept"
    assert outbox.retry([row.id], T0 + timedelta(days=1, hours=1)) == 1
    assert world.send(T0 + timedelta(days=1, hours=1)).sent == 2  # ben, and the lead's failure notice
    digests = [m for m in world.sink.messages if m.message["Message-ID"] == f"<{row.message_id}>"]
    received = collections.Counter(r for m in digests for r in m.rcpt_tos)
    assert received == {"ann@example.org": 1, "ben@example.org": 1, "cy@example.org": 1}
    [notice] = [m for m in world.sink.messages if m not in digests]
    assert notice.rcpt_tos == ["lead1@example.com"] and "ben@example.org" in notice.message.get_body(("plain",)).get_content()
    assert Outbox.get_by_id(row.id).status == "sent"


def test_ambiguous_acks_only_duplicate_with_the_same_message_id(world):
    world.escalate(20)
    world.sink.mode = "drop_after_data"  # the server keeps the mail but the client never hears "250"
    dropped = world.send(DUE)
    assert dropped.sent == 0 and dropped.retrying == 20
    world.escalate(80, subject="Payments slow", now=DUE + timedelta(seconds=30))  # sent beside the retries
    world.sink.mode = "accept"
    result = world.send(DUE + timedelta(seconds=30))
    assert result.sent == 100
    queued_ids = {row.message_id for row in Outbox.select()}
    received = collections.Counter(m.message["Message-ID"].strip("<>") for m in world.sink.messages)
    assert set(received) == queued_ids  # 100/100 delivered
    duplicates = {mid: n for mid, n in received.items() if n > 1}
    assert len(duplicates) == 20 and set(duplicates.values()) == {2}  # ≤ 20, each the identical Message-ID
    assert world.statuses() == {"sent": 100}


@pytest.mark.chaos
@pytest.mark.parametrize("crashpoint", ["after-outbox-claim", "after-data-before-mark-sent:3"])
def test_a_killed_sender_loses_nothing(world, crashpoint):
    world.escalate(5)
    db.close()
    script = ("import sys; from datetime import datetime; from escalate.store import db; from escalate.outbound import outbox;"
              "from escalate.config import parse_server_url;"
              "db.connect(sys.argv[1]);"
              "outbox.send_due(parse_server_url('X', sys.argv[2], ('smtp',)), datetime.fromisoformat(sys.argv[3]),"
              " connections=1)")
    env = {**os.environ, "ESCALATE_CRASHPOINT": crashpoint}
    crashed = subprocess.run([sys.executable, "-c", script, world.db_url, world.sink.url, DUE.isoformat()],
                             env=env, capture_output=True, timeout=60)
    assert crashed.returncode == 137, crashed.stderr.decode()
    before_restart = len(world.sink.messages)
    assert before_restart == (0 if crashpoint == "after-outbox-claim" else 3)
    env.pop("ESCALATE_CRASHPOINT")
    # the restarted sender, at the same moment, finds what the dead one had not recorded
    done = subprocess.run([sys.executable, "-c", script, world.db_url, world.sink.url, DUE.isoformat()],
                          env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    db.connect(world.db_url)
    received = collections.Counter(message_ids(world.sink))
    assert len(received) == 5  # 0 lost
    if crashpoint == "after-outbox-claim":
        assert sum(received.values()) == 5  # nothing had gone out: nothing is doubled
    else:
        # only the mail whose "250" was not yet recorded goes again, with its identical Message-ID
        assert sum(received.values()) == 6 and max(received.values()) == 2
    assert world.statuses() == {"sent": 5}


def test_hundreds_of_notifications_go_over_at_most_ten_connections(world):
    # 200 already reuse each connection dozens of times; bench/outbox_bench.py sends 10,000 the same way
    world.escalate(200)
    world.sink.clear()
    result = world.send(DUE)
    assert result.sent == 200 and result.failed == 0
    assert 1 < result.connections <= 10  # concurrent, and reused
    assert world.sink.connections == result.connections
    assert len(set(message_ids(world.sink))) == 200


def test_a_slow_server_times_out_and_the_retry_keeps_the_message_id(world):
    [row] = world.escalate(1)
    world.sink.mode = "slow"
    world.sink.delay = 1.0
    result = world.send(DUE, timeout=0.3)
    assert result.sent == 0 and result.retrying == 1  # the sender did not wait for the slow server
    delivery = Delivery.get(Delivery.outbox == row.id)
    assert delivery.status == "queued" and "Timeout" in delivery.last_error
    world.sink.mode = "accept"
    assert world.send(DUE + timedelta(seconds=30)).sent == 1
    # the slow session was cut before it took the mail; the retry is the same notification
    assert message_ids(world.sink) == [f"<{row.message_id}>"]
    assert Delivery.get(Delivery.outbox == row.id).attempts == 2


def test_a_slow_server_cannot_hold_the_sender_past_its_time_budget(world):
    world.escalate(20)
    world.sink.mode = "slow"
    world.sink.delay = 0.4
    result = world.send(DUE, connections=2, time_budget=0.5)
    assert 0 < result.sent < 20 and result.retrying == 0  # it stopped starting new sends, and gave up nothing
    untouched = Delivery.select().where(Delivery.status == "queued")
    assert untouched.count() == 20 - result.sent
    assert {(d.attempts, d.last_error, d.next_attempt_at) for d in untouched} == {(0, None, DUE)}  # not penalised
    world.sink.mode = "accept"
    assert world.send(DUE + timedelta(seconds=10)).sent == 20 - result.sent
    assert len(set(message_ids(world.sink))) == 20 == len(world.sink.messages)


def test_envelope_comes_from_the_rules_and_carries_a_verifiable_verp(world):
    hostile = "Invoice\r\nBcc: evil@attacker.example\r\nTo: evil2@attacker.example"
    [row] = world.escalate(1, subject=hostile)
    world.send(DUE)
    [mail] = world.sink.messages
    assert mail.rcpt_tos == [world.ruleset.tier(1).group]  # RCPT == the tier's address from the rules
    assert mail.mail_from.startswith("support+bounce-") and mail.mail_from.endswith("@example.com")
    assert verp.verify(mail.mail_from, "tier1@example.com", SECRET)
    found = outbox.bounce_target(mail.mail_from, SECRET)
    assert found is not None and found[0].id == row.id and found[1].recipient == "tier1@example.com"
    tampered = mail.mail_from.replace("bounce-1.", "bounce-2.")
    assert outbox.bounce_target(tampered, SECRET) is None
    assert outbox.bounce_target(mail.mail_from, b"another secret") is None
    headers = mail.message
    names = sorted(k.lower() for k in headers.keys())
    assert "bcc" not in names and names.count("to") == 1
    assert headers["Message-ID"] == f"<{row.message_id}>"
    assert headers["Subject"].startswith("[T-1] Escalation to Frontline: Invoice")
    assert headers["Auto-Submitted"] == "auto-generated" and headers["X-Auto-Response-Suppress"] == "All"
    assert headers["X-Escalate-Ticket"] == "T-1"


def test_in_reply_to_and_references_follow_the_ticket_thread(world):
    [first] = world.escalate(1)
    ticket = first.ticket
    reminder = notify.queue_confirmation(ticket=ticket, tier=world.ruleset.tier(1), actor="alice@example.com",
                                         action_text="acknowledged", note="", ruleset=world.ruleset,
                                         renderer=world.renderer, secret=SECRET, now=DUE)
    world.send(DUE)
    second = next(m.message for m in world.sink.messages if m.message["Message-ID"] == f"<{reminder.message_id}>")
    assert second["In-Reply-To"] == f"<{first.message_id}>"
    assert f"<{first.message_id}>" in second["References"]
    assert second["Subject"].startswith("[T-1] ")


def test_the_same_step_twice_queues_and_sends_once(world):
    [row] = world.escalate(1)
    escalation = Escalation.get()
    with db.write_transaction():
        again = notify.queue_ladder_mail(
            ticket=row.ticket, escalation=escalation,
            step=MailStep(kind="escalation", tier=1, step=0, due_at=DUE, rule="urgent-no-first-response",
                          reasons=("urgent-no-first-response",)),
            next_step="", ruleset=world.ruleset, renderer=world.renderer, secret=SECRET,
            now=DUE + timedelta(seconds=5))
    assert again is None
    assert world.send(DUE).sent == 1 and world.send(DUE).sent == 0
    assert Outbox.select().count() == 1 and Delivery.select().count() == 1
    assert len(world.sink.messages) == 1


def test_outbox_cli_lists_shows_retries_and_cancels(world, cli):
    rows = world.escalate(2)
    world.sink.mode = "reject"
    world.send(DUE, on_failed=None)
    world.sink.mode = "accept"
    listed = json_out(cli("outbox", "list", "--status", "failed", "--json"))
    assert [r["id"] for r in listed] == [rows[0].id, rows[1].id]
    shown = json_out(cli("outbox", "show", str(rows[0].id), "--json"))
    [delivery] = shown["deliveries"]
    assert delivery["status"] == "failed" and delivery["code"] == 554 and delivery["recipient"] == "tier1@example.com"
    assert delivery["mail_from"].startswith("support+bounce-")
    assert "554" in cli("outbox", "show", str(rows[0].id)).output
    cli("outbox", "show", "999", expect=2)
    assert "1 cancelled" in cli("outbox", "cancel", str(rows[1].id)).output
    assert "1 queued" in cli("outbox", "retry", "--now", DUE.isoformat()).output  # the cancelled row stays cancelled
    db.connect(world.db_url)
    assert world.send(DUE + timedelta(minutes=1)).sent == 1
    assert {r["id"]: r["status"] for r in json_out(cli("outbox", "list", "--json"))} == {
        rows[0].id: "sent", rows[1].id: "cancelled"}


def json_out(result):
    import json
    return json.loads(result.output)


# -- plain, STARTTLS and TLS with AUTH, from ESCALATE_SMTP_URL --------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, trusted through SSL_CERT_FILE in the tests below."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.mark.parametrize("scheme", ["smtps", "smtp+starttls"])
def test_tls_and_starttls_with_authentication(world, certificate, monkeypatch, scheme):
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append((session.authenticated, envelope.mail_from, envelope.rcpt_tos))
            return "250 OK"

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"escalate" and auth_data.password == b"s3cret/pw"
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    class PortZeroController(Controller):
        def _trigger_server(self):  # learn the kernel-chosen port before aiosmtpd's readiness probe
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    tls = scheme == "smtps"
    controller = PortZeroController(
        Handler(), hostname="127.0.0.1", port=0, server_hostname="localhost", ready_timeout=10,
        ssl_context=context if tls else None, tls_context=None if tls else context,
        require_starttls=not tls, authenticator=authenticator, auth_require_tls=not tls)
    controller.start()
    try:
        port = controller.port
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        [row] = world.escalate(1)
        bad = parse_server_url("ESCALATE_SMTP_URL", f"{scheme}://escalate:wrong@127.0.0.1:{port}", (scheme,))
        with pytest.raises(outbox.SmtpLoginRefused) as refused:
            outbox.send_due(bad, DUE)
        assert received == [] and "535" in str(refused.value)
        assert "wrong" not in str(refused.value)  # the password never reaches a message
        # a configuration error, not a temporary one: the mail is not charged an attempt, and it says so
        assert (Delivery.get().status, Delivery.get().attempts) == ("queued", 0)
        assert [p["name"] for p in problems.listing()] == ["smtp-login"]
        good = parse_server_url("ESCALATE_SMTP_URL", f"{scheme}://escalate:s3cret%2Fpw@127.0.0.1:{port}", (scheme,))
        assert outbox.send_due(good, DUE + timedelta(minutes=1)).sent == 1
        assert problems.listing() == []  # fixed: no longer shown
        assert received == [(True, Delivery.get().mail_from, ["tier1@example.com"])]
    finally:
        controller.stop()


S8_SUBJECTS = ["raw crlf\r\nBcc: evil@attacker.example", "bare lf\nBcc: evil@attacker.example",
               "bare cr\rBcc: evil@attacker.example", "trailing newline\n",
               "A subject=?UTF-8?Q?=0A?=Bcc: evil@attacker.example", "line\u2028separator Bcc: evil@attacker.example",
               "next\u0085line", "nul\x00byte", "x" * 10_000]


def test_unsanitised_ticket_subjects_cannot_add_headers_or_recipients(world):
    """Defence in depth: even text that reached the database raw (ingest cleans subjects too)
    cannot break a notification's headers on this unpatched Python 3.11.7."""
    for subject in S8_SUBJECTS:
        world.escalate(1, subject=subject)
    assert world.send(DUE).sent == len(S8_SUBJECTS)  # every notification still goes out
    import email
    import email.policy
    for mail in world.sink.messages:
        assert mail.rcpt_tos == ["tier1@example.com"]
        reparsed = email.message_from_bytes(mail.data, policy=email.policy.compat32)
        assert sorted(k.lower() for k in reparsed.keys()) == sorted([
            "subject", "from", "to", "reply-to", "date", "message-id", "auto-submitted", "x-auto-response-suppress",
            "x-escalate-ticket", "x-escalate-kind", "mime-version", "content-type"])
        subject = str(mail.message["Subject"])
        assert subject.startswith("[T-") and not any(c in subject for c in "\r\n\x00\u2028\u0085")
        assert len(subject) <= 250


def test_next_tier_and_resolution_notice_reach_every_tier_that_was_told(world):
    [first] = world.escalate(1)
    ticket, rule = first.ticket, world.ruleset.rule("urgent-no-first-response")
    escalation = Escalation.get()
    later = DUE + timedelta(minutes=30)
    with db.write_transaction():
        climbed = notify.queue_ladder_mail(
            ticket=ticket, escalation=escalation,
            step=MailStep(kind="next-tier", tier=2, step=0, due_at=later, rule=rule.name, reasons=(rule.name,),
                          previous_tier=1),
            next_step="No further tier.", ruleset=world.ruleset, renderer=world.renderer, secret=SECRET, now=later)
        tickets.resolve(ticket, "carol@example.com", later, via="mail", note="Restarted the payment proxy.")
        notice = notify.queue_resolution_notice(ticket=ticket, actor="carol@example.com",
                                                note="Restarted the payment proxy.", ruleset=world.ruleset,
                                                renderer=world.renderer, secret=SECRET, now=later)
    assert climbed.kind == "next-tier" and notice.recipients == ["tier1@example.com", "tier2@example.com"]
    assert world.send(later).sent == 4
    by_id = collections.defaultdict(list)
    for mail in world.sink.messages:
        by_id[mail.message["Message-ID"]].append(mail)
    [to_tier2] = by_id[f"<{climbed.message_id}>"]
    assert to_tier2.rcpt_tos == ["tier2@example.com"]
    assert "now comes to you, Specialists" in to_tier2.message.get_body(("plain",)).get_content()
    resolution = by_id[f"<{notice.message_id}>"]
    assert sorted(m.rcpt_tos[0] for m in resolution) == ["tier1@example.com", "tier2@example.com"]
    text = resolution[0].message.get_body(("plain",)).get_content()
    assert "resolved by carol@example.com" in text and "Restarted the payment proxy." in text
    assert resolution[0].message["Subject"].startswith("[T-1] Resolved by carol@example.com")


@pytest.mark.chaos
def test_random_kills_of_the_sender_lose_nothing_and_duplicate_only_the_in_flight_mail(world):
    """Kills while sending, the random half: each sender process is SIGKILLed at a random moment
    once it is sending (seeded; ESCALATE_SOAK_SCALE multiplies the kills and the mail), then one run
    finishes. Nothing is lost; a mail can only go twice if its acknowledgement was in flight at a
    kill, and then with its own Message-ID."""
    import random
    import time

    kills = soak.scaled(4)
    mails = 50 * kills  # a kill lands within 0.3 s of the first send, ≤ 30 mails at the sink's pace: some are left for each
    world.escalate(mails)
    db.close()
    world.sink.mode, world.sink.delay = "slow", 0.02  # ≤ 100 mails/s over the 2 connections: room to land kills
    script = ("import sys; from datetime import datetime; from escalate.store import db; from escalate.outbound import outbox;"
              "from escalate.config import parse_server_url;"
              "db.connect(sys.argv[1]);"
              "outbox.send_due(parse_server_url('X', sys.argv[2], ('smtp',)), datetime.fromisoformat(sys.argv[3]),"
              " connections=2)")
    command = [sys.executable, "-c", script, world.db_url, world.sink.url, DUE.isoformat()]
    chance = random.Random(6)
    landed = 0
    for _ in range(kills):
        before = len(world.sink.messages)
        sender = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # past its start-up and sending: then a random moment of the sending run
        wait_until("the sender sends or ends", lambda sender=sender, before=before: (
            len(world.sink.messages) > before or sender.poll() is not None), interval=0.01)
        time.sleep(chance.uniform(0.0, 0.3))
        if sender.poll() is None:
            sender.kill()
            landed += 1
        sender.wait(timeout=30)
    world.sink.mode = "accept"  # the last run is not killed: no need to pace it
    for _ in range(10):  # a run stops starting sends after its time budget: run until the queue is empty
        finished = subprocess.run(command, capture_output=True, timeout=120)
        assert finished.returncode == 0, finished.stderr.decode()
        db.connect(world.db_url)
        if world.statuses() == {"sent": mails}:
            break
        db.close()
    received = collections.Counter(message_ids(world.sink))
    assert len(received) == mails  # 0 lost
    assert world.statuses() == {"sent": mails}
    doubled = sum(count - 1 for count in received.values())
    print(f"{landed} of {kills} kills landed while sending; {mails} delivered, {doubled} sent twice")
    assert doubled <= 2 * landed  # at most the mail in flight on each of the 2 connections at a kill
    assert landed >= kills - 1, "too few kills landed while sending; the test proves little"
