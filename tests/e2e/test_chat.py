"""Chat channels end to end: customer mail in Dovecot → escalation → the aiosmtpd sink AND a
loopback webhook receiver, posted through Apprise's real code path (its json:// and mmost://
plugins making real HTTP requests), with the receiver up, down, or refusing."""

from __future__ import annotations

import collections
import http.server
import json
import threading
from datetime import timedelta

import pytest
from escalate.clock import parse_time
from escalate.testing.loopback import Dovecot, SmtpSink

from tests.conftest import TEST_RULES

from .daemon_process import DaemonProcess, wait_until
from .ingest_support import run_once

T0 = "2026-11-02T09:00:00+00:00"
JSON_TOKEN = "jsonSecretToken7f3a"
MM_TOKEN = "mmostSecretToken9c1e"

CHAT_RULES = TEST_RULES.replace(
    "    lead: lead1@example.com\n",
    "    lead: lead1@example.com\n    chat: [frontline, ops]\n", 1)


def at(minutes: float) -> str:
    return (parse_time(T0) + timedelta(minutes=minutes)).isoformat()


class Receiver:
    """A loopback HTTP server that records each POST (path, JSON body) and answers `status`;
    `stop()` closes its port (connection refused) and `start()` opens the same port again.
    `hold()` makes it a slow service: each POST is answered only on `release()` (or after
    HOLD_SECONDS, within Apprise's 4 s read timeout, so the post is not retried)."""

    HOLD_SECONDS = 3.0

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict]] = []
        self.status = 200
        self._answering = threading.Event()
        self._answering.set()
        self.answered = 0
        self.port = 0
        self._server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.posts.append((self.path, json.loads(body)))
                receiver._answering.wait(receiver.HOLD_SECONDS)
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"message": "invalid webhook"}' if receiver.status >= 400 else b"{}")
                receiver.answered += 1

            def log_message(self, *args) -> None:
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        # shutdown() waits for the loop's next look at its flag: every 50 ms, not the default 0.5 s
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def hold(self) -> None:
        self._answering.clear()

    def release(self) -> None:
        self._answering.set()

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def urls(self) -> dict[str, str]:
        return {"ESCALATE_CHAT_FRONTLINE": f"json://127.0.0.1:{self.port}/hook/{JSON_TOKEN}",
                "ESCALATE_CHAT_OPS": f"mmost://127.0.0.1:{self.port}/{MM_TOKEN}"}


@pytest.fixture
def receiver():
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def env(env, receiver, rules_file):
    env = dict(env, **receiver.urls())
    env["ESCALATE_RULES"] = str(rules_file(CHAT_RULES))
    return env


def cycle(cli, minutes: float, *options: str) -> dict:
    return json.loads(cli(*options, "run", "--once", "--now", at(minutes), "--json").stdout)


def escalate_one(cli, dovecot: Dovecot, mail, *options: str) -> None:
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down for everyone",
                        body="No order goes through.", message_id="c1@customer.example"))
    cycle(cli, 0, *options)
    cycle(cli, 16, *options)  # no first response within 15 minutes: tier 1 is told


def chat_deliveries(cli) -> list[dict]:
    rows = json.loads(cli("outbox", "list", "--json").output)
    found = []
    for row in rows:
        detail = json.loads(cli("outbox", "show", str(row["id"]), "--json").output)
        found += [dict(d, outbox=row["id"], kind=row["kind"]) for d in detail["deliveries"]
                  if d["recipient"].startswith("chat:")]
    return found


BOTH_DATABASES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@BOTH_DATABASES
def test_an_escalation_reaches_the_mail_sink_and_both_webhooks_once(env, cli, dovecot, smtp_sink: SmtpSink, receiver,
                                                                     mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down for everyone",
                        body="No order goes through.", message_id="c1@customer.example"))
    cycle(cli, 0)
    # the cycle that posts, as its own process at debug level: what the daemon's log shows
    logged = run_once(env, "-vv", now=at(16)).stderr
    [escalation] = smtp_sink.wait_for(1)
    assert escalation.rcpt_tos == ["tier1@example.com"]
    paths = sorted(path for path, _ in receiver.posts)
    assert paths == [f"/hook/{JSON_TOKEN}", f"/hooks/{MM_TOKEN}"]
    posted = dict(receiver.posts)
    generic = posted[f"/hook/{JSON_TOKEN}"]
    assert generic["title"] == "Escalation T-1"
    for words in ("**T-1** Checkout is down for everyone", "severity **urgent**", "tier 1 Frontline", "age 16m",
                  "Needed: Acknowledge the ticket (reply #ack)",
                  "Next: Unless someone acknowledges, reminder 1 to Frontline at 2026-11-02 09:25 UTC", "Reply #ack to the mail"):
        assert words in generic["message"], (words, generic["message"])
    assert "Checkout is down for everyone" in posted[f"/hooks/{MM_TOKEN}"]["text"]

    # later cycles post nothing again, and the mail is not sent again either
    cycle(cli, 17)
    cycle(cli, 18)
    assert len(receiver.posts) == 2 and len(smtp_sink.messages) == 1
    deliveries = chat_deliveries(cli)
    assert sorted((d["recipient"], d["status"], d["attempts"]) for d in deliveries) == [
        ("chat:frontline", "sent", 1), ("chat:ops", "sent", 1)]

    # what a person reads never shows a channel's token
    listed = cli("chat", "list").output
    rows = [line.split() for line in listed.splitlines()]
    assert rows[0] == ["Channel", "Variable", "URL", "Last", "post"]
    assert rows[2][:6] == ["frontline", "ESCALATE_CHAT_FRONTLINE", "json://…", "outbox", "#1", "sent"]
    assert rows[3][:3] == ["ops", "ESCALATE_CHAT_OPS", "mmost://…"]
    status = cli("status", expect=3).output
    assert "chat:        frontline (json://…), ops (mmost://…); 0 posts queued, 0 failed" in status
    for output in (listed, cli("chat", "list", "--json").output, status, cli("status", "--json", expect=3).output,
                   cli("outbox", "show", "1").output, logged):
        assert JSON_TOKEN not in output and MM_TOKEN not in output
    assert "outbox 1 posted to chat:frontline (json://…)" in logged  # the log is there, only without tokens


def test_with_plus_address_replies_the_post_links_the_signed_reply_address_with_ack(cli, env, rules_file, dovecot,
                                                                                   smtp_sink, receiver, mail):
    rules_file(CHAT_RULES.replace("reference_prefix: T\n", "reference_prefix: T\nplus_address_replies: true\n"))
    escalate_one(cli, dovecot, mail)
    [escalation] = smtp_sink.wait_for(1)
    reply_to = escalation.message["Reply-To"]
    assert reply_to.startswith("support+esc.")
    message = dict(receiver.posts)[f"/hook/{JSON_TOKEN}"]["message"]
    assert f"[Acknowledge by mail (#ack)](mailto:{reply_to}?subject=Re%3A%20%5BT-1%5D&body=%23ack)" in message
    assert "Reply #ack to the mail" not in message


def test_a_drill_is_marked_drill_in_the_post(cli, smtp_sink, receiver):
    cli("drill", "--tier", "1", "--now", T0)
    cycle(cli, 1)
    smtp_sink.wait_for(1)
    post = dict(receiver.posts)[f"/hook/{JSON_TOKEN}"]
    assert post["title"].startswith("DRILL ")
    assert post["message"].startswith("**DRILL** — a practice escalation, no customer is waiting.")


@BOTH_DATABASES
def test_the_receiver_down_is_retried_and_the_mail_goes_regardless(cli, dovecot, smtp_sink, receiver, mail):
    receiver.stop()
    escalate_one(cli, dovecot, mail)
    [escalation] = smtp_sink.wait_for(1)
    assert escalation.rcpt_tos == ["tier1@example.com"]
    deliveries = chat_deliveries(cli)
    assert {(d["recipient"], d["status"], d["attempts"]) for d in deliveries} == {
        ("chat:frontline", "queued", 1), ("chat:ops", "queued", 1)}
    assert all("Connection error" in d["last_error"] for d in deliveries)
    assert [row["status"] for row in json.loads(cli("outbox", "list", "--json").output)] == ["queued"]

    receiver.start()  # the same port, back up
    cycle(cli, 16.2)  # inside the first back-off (30 s): nothing is tried yet
    assert receiver.posts == []
    cycle(cli, 17)
    assert len(receiver.posts) == 2
    assert {(d["status"], d["attempts"]) for d in chat_deliveries(cli)} == {("sent", 2)}
    assert [row["status"] for row in json.loads(cli("outbox", "list", "--json").output)] == ["sent"]
    assert len(smtp_sink.messages) == 1  # the mail went once, at the first try


def test_a_400_fails_the_post_with_the_reason_and_tells_the_lead_once(cli, rules_file, dovecot, smtp_sink, receiver,
                                                                      mail):
    # the lead's own channel is on the refusing service too: its failure notice fails there, and stops
    rules_file(CHAT_RULES.replace("    chat: [frontline, ops]\n", "    chat: [frontline, ops]\n    lead_chat: [ops]\n"))
    receiver.status = 400
    escalate_one(cli, dovecot, mail)
    deliveries = {d["recipient"]: d for d in chat_deliveries(cli)}
    assert deliveries["chat:frontline"]["status"] == "failed"
    assert deliveries["chat:frontline"]["code"] == 400
    assert "error=400" in deliveries["chat:frontline"]["last_error"]
    assert JSON_TOKEN not in deliveries["chat:frontline"]["last_error"]
    for minutes in (17, 20, 24):  # before the first reminder (25), which would post again
        cycle(cli, minutes)
    # the escalation's two posts, and the lead's notice on the lead's channel: each tried once
    assert len(receiver.posts) == 3
    assert receiver.posts[-1][1]["text"].startswith("Undeliverable notification T-1")
    notices = [d for d in chat_deliveries(cli) if d["kind"] == "delivery-failure"]
    assert [(d["recipient"], d["status"]) for d in notices] == [("chat:ops", "failed")]
    mails = smtp_sink.wait_for(2)
    assert sorted(m.rcpt_tos[0] for m in mails) == ["lead1@example.com", "tier1@example.com"]
    [notice] = [m for m in mails if m.rcpt_tos == ["lead1@example.com"]]
    assert "Undeliverable" in notice.message["Subject"]
    assert len(smtp_sink.messages) == 2  # the lead is told once


def test_chat_test_posts_now_and_says_what_the_service_answered(cli, receiver):
    assert "frontline: posted" in cli("chat", "test", "frontline").output
    assert receiver.posts[-1][1]["title"] == "escalate test message"
    receiver.status = 400
    failed = cli("chat", "test", "ops", expect=1)
    assert "error=400" in failed.output and MM_TOKEN not in failed.output
    assert "has no URL" in cli("chat", "test", "frontlin", expect=2).output


@pytest.mark.parametrize(("variable", "url", "expected"), [
    ("ESCALATE_CHAT_FRONTLINES", "json://127.0.0.1:9/x", 'chat channel "frontline" has no URL: set '
                                                          'ESCALATE_CHAT_FRONTLINE in the environment; did you mean "frontlines"?'),
    ("ESCALATE_CHAT_FRONTLINE", "slak://TokenA/TokenB/TokenC", 'ESCALATE_CHAT_FRONTLINE has the scheme "slak://", '
                                                               'which Apprise does not know (did you mean "slack://"?)'),
])
def test_rules_check_names_a_channel_without_a_usable_url(env, rules_file, variable, url, expected):
    from click.testing import CliRunner
    from escalate.cli import main

    path = rules_file(CHAT_RULES.replace("chat: [frontline, ops]", "chat: [frontline]"))
    environ = {k: v for k, v in env.items() if not k.startswith("ESCALATE_CHAT_")}
    environ[variable] = url
    result = CliRunner().invoke(main, ["rules", "check", str(path)], env=environ | {"ESCALATE_CHAT_OPS": ""})
    assert result.exit_code == 2, result.output
    line = CHAT_RULES.splitlines().index("    chat: [frontline, ops]") + 1
    assert f"{path}:{line}:12: tiers[0].chat[0]: {expected}" in result.output
    assert "TokenB" not in result.output


@pytest.mark.chaos
@pytest.mark.parametrize("crashpoint", ["in-tick-before-commit", "after-chat-post-before-mark-sent"])
def test_a_kill_mid_post_repeats_at_most_that_post_and_loses_none(crashpoint, env, cli, rules_file, dovecot, smtp_sink,
                                                                  receiver, mail):
    """`escalate run --once` killed (os._exit) at the crash point the 3rd time, then run again twice
    (in-process: only the killed run needs a process of its own)."""
    env["ESCALATE_RULES"] = str(rules_file(CHAT_RULES.replace("no_first_response_for: 15m", "no_first_response_for: 0m")))
    count = 5
    for n in range(count):
        dovecot.append(mail(sender=f"customer{n}@example.net", subject=f"Outage number {n}", body="down",
                            message_id=f"m{n}@example.net"))

    assert run_once(env, now=T0, extra={"ESCALATE_CRASHPOINT": f"{crashpoint}:3"}).returncode == 137
    cycle(cli, 0)
    cycle(cli, 0)
    posted = collections.Counter((path, body.get("title") or body["text"].split("\r\n")[0]) for path, body in receiver.posts)
    # every ticket's escalation reached both channels …
    assert {title for (path, title) in posted if path.startswith("/hook/")} == {f"Escalation T-{n}" for n in range(1, 6)}
    assert len({title for (path, title) in posted if path.startswith("/hooks/")}) == count
    # … once, but for the one post whose outcome the kill kept from being recorded
    duplicates = [key for key, n in posted.items() if n > 1]
    assert len(duplicates) == (1 if crashpoint == "after-chat-post-before-mark-sent" else 0)
    assert all(n <= 2 for n in posted.values())
    mails = collections.Counter(m.message["Message-ID"] for m in smtp_sink.wait_for(count))
    assert len(mails) == count and set(mails.values()) == {1}  # the mail is untouched by chat's trouble


def test_a_post_that_goes_before_its_mail_is_rendered_leaves_the_mail_to_be_sent(env, cli, dovecot, smtp_sink,
                                                                                  receiver, mail, monkeypatch):
    """The daemon ticks, posts and mails in separate stages: chat may record its posts while the
    mail is still waiting to be rendered. The mail must go all the same."""
    from escalate.config import load_settings
    from escalate.ops import service
    from escalate.outbound import chatsend
    from escalate.store import db

    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down for everyone",
                        body="No order goes through.", message_id="c1@customer.example"))
    cycle(cli, 0)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = service.open_app(load_settings())
    try:
        service.tick(app, parse_time(at(16)))  # the tick stage decides the escalation
        chatsend.send_due(parse_time(at(16)), environ=env)  # the chat stage runs before the send stage
    finally:
        db.close()
    assert len(receiver.posts) == 2 and smtp_sink.messages == []
    assert [row["status"] for row in json.loads(cli("outbox", "list", "--json").stdout)] == ["queued"]
    cycle(cli, 16.5)  # the send stage: renders the mail and sends it
    assert [m.rcpt_tos for m in smtp_sink.wait_for(1)] == [["tier1@example.com"]]
    assert [row["status"] for row in json.loads(cli("outbox", "list", "--json").stdout)] == ["sent"]
    assert len(receiver.posts) == 2


def test_the_daemon_posts_in_a_stage_of_its_own_so_neither_outage_holds_up_the_other(env, rules_file, dovecot,
                                                                                     smtp_sink, receiver, mail):
    """`escalate run`: while the chat service has not answered a post, a new ticket's mail still goes;
    while the SMTP server takes 8 s per mail, a new ticket's posts still go before that mail is
    accepted. The metrics count the posts."""
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env.update({"ESCALATE_METRICS": f"127.0.0.1:{port}",
                "ESCALATE_RULES": str(rules_file(CHAT_RULES.replace("no_first_response_for: 15m", "no_first_response_for: 0m"))),
                "ESCALATE_STOP_SECONDS": "1"})  # at the end, the mail hanging in the slow SMTP server is not waited out

    def mail_sent(subject: str) -> bool:
        return any(subject in m.message["Subject"] for m in smtp_sink.messages)

    with DaemonProcess(env) as daemon:
        try:
            receiver.hold()  # the chat service is slow: it answers no post until released
            dovecot.append(mail(sender="carl@customer.example", subject="Site down", body="All pages 500."))
            wait_until("T-1's first post", lambda: len(receiver.posts) == 1, 20)
            dovecot.append(mail(sender="dana@other.example", subject="Database down", body="Timeouts."))
            wait_until("T-2's mail", lambda: mail_sent("Database down"), 20)
            assert receiver.answered == 0, "T-2's mail waited for the chat service to answer T-1's post"
            receiver.release()
            wait_until("T-1's and T-2's posts answered", lambda: receiver.answered >= 4, 30)

            smtp_sink.mode, smtp_sink.delay = "slow", 8.0  # now the SMTP server hangs on every mail
            dovecot.append(mail(sender="erin@third.example", subject="Login down", body="Nobody can log in."))
            wait_until("T-3's post", lambda: any(body.get("title") == "Escalation T-3" for _, body in receiver.posts), 20)
            assert not mail_sent("Login down"), "T-3's post waited for the SMTP server to take T-3's mail"

            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            assert 'escalate_chat_posts_total{outcome="sent"}' in metrics
            assert 'escalate_chat_posts_pending{state="failed"} 0.0' in metrics
        finally:
            _code, err = daemon.stop()
    assert JSON_TOKEN not in err and MM_TOKEN not in err


def test_a_groups_hourly_ceiling_holds_its_channel_too_which_gets_the_summary(cli, rules_file, dovecot, smtp_sink,
                                                                              receiver, mail):
    rules_file(CHAT_RULES.replace("group_mails_per_hour: 0", "group_mails_per_hour: 30")
               .replace("chat: [frontline, ops]", "chat: [frontline]"))
    for n in range(36):
        dovecot.append(mail(sender=f"shop{n}@customer{n}.example", subject=f"Checkout outage at shop {n}",
                            body="Nothing works.", message_id=f"flood{n}@customer.example"))
    cycle(cli, 0)
    cycle(cli, 16)  # every ticket escalates to tier 1 at once
    titles = collections.Counter(body["title"].split(" T-")[0] for _, body in receiver.posts)
    kinds = collections.Counter(m.message["X-Escalate-Kind"] for m in smtp_sink.messages)
    assert kinds == {"escalation": 30, "group-summary": 1}
    assert titles == {"Escalation": 30, "Group summary": 1}  # the channel is told as the group is, no more
