"""Tier members act from their mail client — and nobody else can (replies act only with two proofs,
a roster sender and a valid token).

Real Dovecot and aiosmtpd; time moves with --now. Each test escalates an urgent ticket to tier 1,
then replies to that notification the way a person's mail client would write the reply.
"""

from __future__ import annotations

import json
from datetime import timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import pytest
from escalate.clock import parse_time
from escalate.testing.loopback import Dovecot, SmtpSink

from ..conftest import TEST_RULES

T0 = parse_time("2026-11-02T09:00:00+00:00")
RULES = TEST_RULES + """\
  - name: agent-requested
    description: An agent asked for the ticket to be escalated.
    when:
      escalation_requested: true
    then:
      escalate_to: 2
"""


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def cycle(cli, minutes: float) -> dict:
    return json.loads(cli("run", "--once", "--now", at(minutes), "--json").output)


def show(cli, ref: str = "T-1") -> dict:
    return json.loads(cli("tickets", "show", ref, "--json").output)


def actions(detail: dict) -> list[str]:
    return [e["action"] for e in detail["events"]]


@pytest.fixture
def escalated(env, rules_file, cli, dovecot: Dovecot, smtp_sink: SmtpSink, mail):
    """T-1 (urgent, from carl) escalated to tier 1 at 09:16; returns the notification as received."""
    env["ESCALATE_RULES"] = str(rules_file(RULES))
    dovecot.append(mail(sender="Carl <carl@customer.example>", subject="Checkout is down",
                        body="Payment fails with 502.", message_id="carl-1@customer.example"))
    cycle(cli, 0)
    cycle(cli, 16)
    [notification] = smtp_sink.wait_for(1)
    smtp_sink.clear()
    return notification


def reply(sender: str, notification, body: str, *, html: str | None = None, in_reply_to: bool = True,
          headers: dict[str, str] | None = None, subject: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject or "Re: " + str(notification.message["Subject"])
    msg["Date"] = format_datetime(T0 + timedelta(minutes=20))
    msg["Message-ID"] = f"<reply-{abs(hash((sender, body, html))) % 10**12}@client.example>"
    if in_reply_to:
        msg["In-Reply-To"] = notification.message["Message-ID"]
        msg["References"] = notification.message["Message-ID"]
    for name, value in (headers or {}).items():
        msg[name] = value
    if html is not None and not body:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    return msg.as_bytes()


QUOTE = "On Mon, 2 Nov 2026 at 09:16, Support escalations <support@example.com> wrote:\n> #resolve\n> old text\n"


# --- what each client writes: a new #ack on top, an old #resolve in the quoted history ----------

GMAIL = "#ack\nLooking now.\n\n" + QUOTE
APPLE = "#ack\n\nSent from my iPhone\n\n> On 2 Nov 2026, at 09:16, Support escalations <support@example.com> wrote:\n>\n> #resolve\n"
THUNDERBIRD = "#ack\n\nOn 02/11/2026 09:16, Support escalations wrote:\n> #resolve\n"
OUTLOOK_HTML = ("<html><body><div>#ack</div><div>I take it.</div><hr>"
                "<div id=\"divRplyFwdMsg\"><b>From:</b> Support escalations &lt;support@example.com&gt;<br>"
                "<b>Sent:</b> Monday, November 2, 2026 9:16 AM<br><b>To:</b> Frontline<br>"
                "<b>Subject:</b> escalation</div><div>#resolve</div></body></html>")


@pytest.mark.parametrize("client, body, html", [
    ("gmail", GMAIL, None),
    ("apple-mail", APPLE, None),
    ("thunderbird", THUNDERBIRD, None),
    ("outlook-html-only", "", OUTLOOK_HTML),
])
def test_ack_from_each_client_acts_and_the_quoted_resolve_never_does(client, body, html, escalated, cli, dovecot, smtp_sink):
    dovecot.append(reply("alice@example.com", escalated, body, html=html,
                         headers={"Thread-Index": "AQHZ1234567890=="} if client.startswith("outlook") else None))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["status"] == "open" and detail["acknowledged_by"] == "alice@example.com", actions(detail)
    assert "resolved" not in actions(detail)
    [confirmation] = smtp_sink.wait_for(1)
    assert "Acknowledged by alice@example.com" in confirmation.message["Subject"]


def test_a_command_below_other_text_does_not_run_and_the_ticket_says_why(escalated, cli, dovecot, smtp_sink):
    """Commands count only at the top: a greeting first, and #resolve below it is text."""
    dovecot.append(reply("alice@example.com", escalated, "Hi all,\n#resolve\n\n" + QUOTE))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["status"] == "new" and "resolved" not in actions(detail)
    [ignored] = [e for e in detail["events"] if e["action"] == "commands-not-at-top"]
    assert ignored["detail"]["commands"] == ["#resolve"] and "first lines" in ignored["detail"]["reason"]
    assert smtp_sink.messages == []


def test_outlook_without_in_reply_to_threads_by_reference_but_cannot_act(escalated, cli, dovecot, smtp_sink):
    """Outlook may send only Thread-Index: the [T-1] tag threads it, but without a token it is no proof."""
    dovecot.append(reply("alice@example.com", escalated, "#ack", in_reply_to=False,
                         headers={"Thread-Index": "AQHZ1234567890=="}))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["message_count"] == 2 and detail["status"] == "new"
    refused = [e for e in detail["events"] if e["action"] == "command-refused"]
    assert refused and "does not answer a notification" in refused[0]["detail"]["reason"]


def test_resolve_with_a_note(escalated, cli, dovecot):
    dovecot.append(reply("bob@example.com", escalated, "#resolve rolled back the deploy\n"))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["status"] == "resolved"
    [event] = [e for e in detail["events"] if e["action"] == "resolved"]
    assert event["actor"] == "bob@example.com" and event["detail"]["note"] == "rolled back the deploy"


def test_escalate_with_structured_fields_reaches_the_requested_path(escalated, cli, dovecot, smtp_sink):
    dovecot.append(reply("alice@example.com", escalated,
                         "#escalate 2 payment provider side\nimpact: all EU checkouts\ntried: restarted gateway\n"
                         "needed: provider contact\ndeadline: 12:00\n"))
    cycle(cli, 20)
    detail = show(cli)
    [details] = [e for e in detail["events"] if e["action"] == "escalation-details"]
    assert details["detail"] == {"via": "mail", "requested_tier": 2, "reason": "payment provider side",
                                 "impact": "all EU checkouts", "tried": "restarted gateway",
                                 "needed": "provider contact", "deadline": "12:00"}
    sent = smtp_sink.wait_for(2)
    assert any(m.rcpt_tos == ["tier2@example.com"] for m in sent), [m.message["Subject"] for m in sent]


def test_assign_severity_note(escalated, cli, dovecot):
    dovecot.append(reply("alice@example.com", escalated,
                         "#assign bob@example.com\n#severity normal\n#note customer is on the enterprise plan\n"
                         "second line of the note\n"))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["assignee"] == "bob@example.com" and detail["severity"] == "normal"
    [note] = [e for e in detail["events"] if e["action"] == "note"]
    assert note["detail"]["text"] == "customer is on the enterprise plan\nsecond line of the note"


def test_assign_to_someone_off_the_roster_fails_and_changes_nothing(escalated, cli, dovecot):
    dovecot.append(reply("alice@example.com", escalated, "#assign mallory@elsewhere.example\n"))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["assignee"] is None
    [failed] = [e for e in detail["events"] if e["action"] == "command-failed"]
    assert "not on any tier's roster" in failed["detail"]["reason"]


def test_reply_goes_to_the_customer_threaded_and_stops_the_first_response_clock(escalated, cli, dovecot, smtp_sink):
    dovecot.append(reply("alice@example.com", escalated,
                         "#reply\nHello Carl,\nwe found the fault and are fixing it.\nAlice\n\n" + QUOTE))
    cycle(cli, 20)
    sent = smtp_sink.wait_for(2)
    [to_customer] = [m for m in sent if m.rcpt_tos == ["carl@customer.example"]]
    assert to_customer.message["In-Reply-To"] == "<carl-1@customer.example>"
    assert "[T-1]" in to_customer.message["Subject"] and to_customer.message["From"].addresses[0].addr_spec == "support@example.com"
    text = to_customer.message.get_body(("plain",)).get_content()
    assert "we found the fault" in text and "#resolve" not in text and "#reply" not in text
    detail = show(cli)
    assert detail["status"] == "open"
    # the first-response rule no longer holds: no reminder follows
    smtp_sink.clear()
    for minutes in (26, 36, 46):
        cycle(cli, minutes)
    assert smtp_sink.messages == []


def test_snooze_holds_reminders_then_they_resume(escalated, cli, dovecot, smtp_sink):
    dovecot.append(reply("alice@example.com", escalated, "#snooze 30m\n"))
    cycle(cli, 20)
    smtp_sink.wait_for(1)  # the confirmation
    smtp_sink.clear()
    for minutes in (26, 36, 46):
        cycle(cli, minutes)
    assert smtp_sink.messages == []
    cycle(cli, 51)  # the snooze is over: one catch-up reminder, not three
    assert len(smtp_sink.wait_for(1)) == 1
    assert show(cli)["status"] == "new"


def test_unknown_command_gets_one_short_help_an_hour(escalated, cli, dovecot, smtp_sink):
    dovecot.append(reply("alice@example.com", escalated, "#acknowledge\n"))
    dovecot.append(reply("alice@example.com", escalated, "#fix-it\n"))
    cycle(cli, 20)
    sent = smtp_sink.wait_for(1)
    helps = [m for m in sent if "Commands escalate understands" in m.message["Subject"]]
    assert len(helps) == 1 and helps[0].rcpt_tos == ["alice@example.com"]
    text = helps[0].message.get_body(("plain",)).get_content()
    assert "#acknowledge" in text and "#ack" in text and "#snooze" in text
    assert show(cli)["status"] == "new"


def test_non_member_with_a_valid_token_is_refused_and_never_told(escalated, cli, dovecot, smtp_sink):
    """The notification was forwarded to someone on no roster: refused and recorded, but no mail goes
    back to them — their From may be forged (backscatter), and they could not act anyway."""
    for n in range(3):
        dovecot.append(reply("frank@partner.example", escalated, f"#ack\nattempt {n}\n"))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["status"] == "new" and detail["message_count"] == 4
    refusals = [e for e in detail["events"] if e["action"] == "command-refused"]
    assert len(refusals) == 3 and all("not on the roster" in e["detail"]["reason"] for e in refusals)
    assert all(e["detail"]["not_told"] == "not on any tier's roster" for e in refusals)
    assert smtp_sink.messages == []


def test_a_member_of_another_tier_is_refused_and_told_once_an_hour(escalated, cli, dovecot, smtp_sink):
    """carol is on tier 2's roster, not tier 1's: she may be told why, at most once an hour."""
    for n in range(3):
        dovecot.append(reply("carol@example.com", escalated, f"#ack\nattempt {n}\n"))
    cycle(cli, 20)
    assert show(cli)["status"] == "new"
    notices = [m for m in smtp_sink.wait_for(1) if m.rcpt_tos == ["carol@example.com"]]
    assert len(notices) == 1 and notices[0].message["X-Escalate-Kind"] == "refusal"
    # it names the ticket it refused (a roster member may be answering several), nothing more of it
    assert notices[0].message["Subject"].startswith("[T-1] ")
    assert "on T-1 contained #ack" in notices[0].message.get_body(("plain",)).get_content()
    # an auto-reply from the same address is machine mail: recorded, never answered
    dovecot.append(reply("carol@example.com", escalated, "#ack\nI am out of office.",
                         headers={"Auto-Submitted": "auto-replied"}))
    cycle(cli, 90)
    assert len([m for m in smtp_sink.messages if m.rcpt_tos == ["carol@example.com"]]) == 1


@pytest.mark.parametrize("sender", ["support@example.com", "support+esc.1234@example.com", "tier1@example.com",
                                    "Tier 2 <TIER2@example.com>"])
def test_mail_from_our_own_or_a_group_address_is_kept_and_never_answered(sender, escalated, cli, dovecot, smtp_sink,
                                                                        mail):
    """A group that echoes a reply, or someone writing as the shared mailbox: no refusal to it (a
    loop with ourselves), no command, and a new subject from it opens no ticket."""
    dovecot.append(reply(sender, escalated, "#resolve\n"))
    dovecot.append(mail(sender=sender, subject="Fwd: please look at the checkout", body="urgent, outage"))
    outcome = cycle(cli, 20)
    assert outcome["ingested"] == {"own-address": 2} and outcome["tickets_created"] == []
    detail = show(cli)
    assert detail["status"] == "new" and "command-refused" not in actions(detail)
    [recorded] = [e for e in detail["events"] if e["action"] == "mail-from-own-address"]
    assert recorded["detail"]["reason"].startswith(("from the support address", "from the group address"))
    cycle(cli, 60 * 24)  # a day on: still one ticket, and nothing ever answered that mail
    assert len(json.loads(cli("tickets", "list", "--json").output)) == 1
    answers = [m.message["X-Escalate-Kind"] for m in smtp_sink.messages]
    assert not {"refusal", "acknowledgement", "confirmation", "command-help"} & set(answers), answers


@pytest.mark.parametrize("forged_id", [None, "esc.0123456789abcdef.abcdefghijklmnopqrstuvwxyz@example.com"])
def test_forged_from_without_a_real_token_is_refused(forged_id, escalated, cli, dovecot):
    """Forged From: From says alice, but the reply quotes no notification we sent (or a guessed one)."""
    msg = reply("alice@example.com", escalated, "#resolve\n", in_reply_to=False)
    if forged_id:
        msg = msg.replace(b"Subject:", f"In-Reply-To: <{forged_id}>\r\nSubject:".encode(), 1) \
            if b"\r\n" in msg else msg.replace(b"Subject:", f"In-Reply-To: <{forged_id}>\nSubject:".encode(), 1)
    dovecot.append(msg)
    cycle(cli, 20)
    detail = show(cli)
    assert detail["status"] == "new"
    assert "command-refused" in actions(detail)


def test_member_removed_from_the_roster_can_no_longer_act(escalated, env, rules_file, cli, dovecot):
    """Member removed: the notification was sent while alice was on the roster; the rules changed since."""
    env["ESCALATE_RULES"] = str(rules_file(RULES.replace("roster: [alice@example.com, bob@example.com]",
                                                          "roster: [bob@example.com]"), name="rules-v2.yaml"))
    dovecot.append(reply("alice@example.com", escalated, "#ack\n"))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["status"] == "new"
    [refused] = [e for e in detail["events"] if e["action"] == "command-refused"]
    assert "not on the roster" in refused["detail"]["reason"]


def test_an_expired_token_is_refused(escalated, cli, dovecot):
    """Expired token: replying to an eight-day-old notification."""
    dovecot.append(reply("alice@example.com", escalated, "#ack\n"))
    cycle(cli, 8 * 24 * 60)
    detail = show(cli)
    assert detail["acknowledged_at"] is None
    refused = [e for e in detail["events"] if e["action"] == "command-refused"]
    assert refused and "older than the token lifetime" in refused[0]["detail"]["reason"]


def test_a_token_for_one_ticket_never_acts_on_another(escalated, cli, dovecot, mail):
    """Token for another ticket: T-1's notification quoted in a mail about T-2 (by its subject tag)."""
    dovecot.append(mail(sender="dana@other.example", subject="Login broken", body="403", message_id="dana-1@x.example"))
    cycle(cli, 18)
    dovecot.append(reply("alice@example.com", escalated, "#resolve\n", subject="Re: [T-2] Login broken"))
    cycle(cli, 20)
    assert show(cli, "T-2")["status"] == "new" and show(cli, "T-1")["status"] == "new"
    refused = [e for e in show(cli, "T-2")["events"] if e["action"] == "command-refused"]
    assert refused and "belongs to another ticket" in refused[0]["detail"]["reason"]


@pytest.mark.parametrize("sender", [
    "alice@example.com@evil.example",
    "alice@example.com <mallory@evil.example>",
    '"alice@example.com" <mallory@evil.example>',
    "mallory@evil.example (alice@example.com)",
    "alice@example.org(<alice@example.com>",
])
def test_confusable_addresses_never_match_the_roster(sender, escalated, cli, dovecot):
    """Address confusion: the CVE-2023-27043 family and display-name tricks."""
    raw = reply("placeholder@example.net", escalated, "#ack\n")
    raw = raw.replace(b"From: placeholder@example.net", b"From: " + sender.encode(), 1)
    dovecot.append(raw)
    cycle(cli, 20)
    assert show(cli)["acknowledged_at"] is None


def test_the_cli_acts_with_the_same_audit_trail(escalated, cli, smtp_sink):
    cli("tickets", "assign", "T-1", "me", "--as", "alice@example.com", "--now", at(20))
    cli("tickets", "escalate", "T-1", "--tier", "2", "--reason", "needs a specialist", "--as", "alice@example.com",
        "--now", at(21))
    cli("tickets", "reply", "T-1", "We are on it.", "--as", "alice@example.com", "--now", at(22))
    cli("tickets", "note", "T-1", "called the provider", "--as", "alice@example.com", "--now", at(23))
    detail = show(cli)
    via = {e["action"]: e["detail"].get("via") for e in detail["events"]}
    assert via["assigned"] == via["escalation-requested"] == via["customer-replied-to"] == via["note"] == "cli"
    assert detail["assignee"] == "alice@example.com"
    cycle(cli, 24)
    assert any(m.rcpt_tos == ["carl@customer.example"] for m in smtp_sink.wait_for(1))
    bad = cli("tickets", "assign", "T-1", "nobody@nowhere.example", "--now", at(25), expect=2)
    assert "not on any tier's roster" in bad.output



def test_an_agent_answering_the_customer_with_support_in_cc_is_the_first_response(escalated, cli, dovecot, smtp_sink, mail):
    dovecot.append(mail(sender="bob@example.com", to="carl@customer.example", subject="Re: [T-1] Checkout is down",
                        body="Hi Carl, we are on it.", headers={"Cc": "support@example.com"}))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["messages"][-1]["kind"] == "agent"
    for minutes in (26, 36, 46):
        cycle(cli, minutes)
    assert smtp_sink.messages == []  # the first-response rule stopped: no reminders


def test_a_reply_on_the_tier_thread_is_internal_and_does_not_count_as_a_response(escalated, cli, dovecot, smtp_sink):
    dovecot.append(reply("alice@example.com", escalated, "#note checking logs\n"))
    cycle(cli, 20)
    assert show(cli)["messages"][-1]["kind"] == "internal"
    smtp_sink.clear()
    cycle(cli, 26)
    assert len(smtp_sink.wait_for(1)) == 1  # the reminder still comes: nobody answered the customer


@pytest.mark.parametrize("keep_previous", [True, False])
def test_secret_rotation_keeps_the_previous_key_for_one_token_lifetime(keep_previous, escalated, env, cli, dovecot):
    old = env["ESCALATE_SECRET"]
    env["ESCALATE_SECRET"] = "b" * 64
    if keep_previous:
        env["ESCALATE_SECRET_PREVIOUS"] = old
    dovecot.append(reply("alice@example.com", escalated, "#ack\n"))
    cycle(cli, 20)
    detail = show(cli)
    if keep_previous:
        assert detail["acknowledged_by"] == "alice@example.com"
    else:
        assert detail["acknowledged_at"] is None
        assert "the reply token does not verify" in [e for e in detail["events"] if e["action"] == "command-refused"][0]["detail"]["reason"]


def test_the_token_lifetime_is_configurable(escalated, env, cli, dovecot):
    env["ESCALATE_TOKEN_TTL"] = "2m"
    dovecot.append(reply("alice@example.com", escalated, "#ack\n"))
    cycle(cli, 20)  # the notification went out at 09:16: four minutes is past a 2-minute lifetime
    assert show(cli)["acknowledged_at"] is None


def test_resolve_tells_every_tier_that_was_escalated_to(escalated, cli, dovecot, smtp_sink):
    for minutes in (26, 36, 46):  # no ack: it climbs to tier 2
        cycle(cli, minutes)
    tier2 = [m for m in smtp_sink.wait_for(3) if m.rcpt_tos == ["tier2@example.com"]][0]
    smtp_sink.clear()
    dovecot.append(reply("carol@example.com", tier2, "#resolve provider fixed their side\n"))
    cycle(cli, 50)
    notices = smtp_sink.wait_for(2)  # one delivery per tier group, the same Message-ID
    assert sorted(r for m in notices for r in m.rcpt_tos) == ["tier1@example.com", "tier2@example.com"]
    assert len({m.message["Message-ID"] for m in notices}) == 1
    assert all("Resolved by carol@example.com" in m.message["Subject"] for m in notices)
    assert show(cli)["status"] == "resolved"


def test_wait_pauses_until_the_customer_writes_and_close_ends_it(escalated, cli, dovecot, mail):
    dovecot.append(reply("alice@example.com", escalated, "#wait asked for the order number\n"))
    cycle(cli, 20)
    assert show(cli)["status"] == "waiting"
    dovecot.append(mail(sender="carl@customer.example", subject="Re: [T-1] Checkout is down", body="Order 4711."))
    cycle(cli, 30)
    assert show(cli)["status"] == "open"  # the customer wrote: the clocks run again
    cli("tickets", "resolve", "T-1", "--as", "bob@example.com", "--now", at(40))
    cli("tickets", "close", "T-1", "--as", "bob@example.com", "--now", at(41))
    assert show(cli)["status"] == "closed"
    bad = cli("tickets", "close", "T-1", "--now", at(42), expect=2)
    assert "only resolved tickets can be closed" in bad.output


def test_with_plus_address_replies_an_outlook_reply_without_in_reply_to_can_act(env, rules_file, cli, dovecot,
                                                                                 smtp_sink, mail):
    env["ESCALATE_RULES"] = str(rules_file(RULES + "plus_address_replies: true\n"))
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="502",
                        message_id="carl-1@customer.example"))
    cycle(cli, 0)
    cycle(cli, 16)
    [notification] = smtp_sink.wait_for(1)
    reply_to = notification.message["Reply-To"].addresses[0].addr_spec
    token = notification.message["Message-ID"].strip("<>").partition("@")[0]
    assert reply_to == f"support+{token}@example.com"
    # Outlook: HTML only, top-posted, Thread-Index but no In-Reply-To/References, sent to Reply-To
    raw = reply("alice@example.com", notification, "", html=OUTLOOK_HTML, in_reply_to=False,
                headers={"Thread-Index": "AQHZ1234567890=="})
    dovecot.append(raw.replace(b"To: support@example.com", f"To: {reply_to}".encode(), 1))
    cycle(cli, 20)
    detail = show(cli)
    assert detail["acknowledged_by"] == "alice@example.com" and "resolved" not in actions(detail)
    # a made-up plus-address proves nothing
    forged = reply("bob@example.com", notification, "#resolve\n", in_reply_to=False)
    dovecot.append(forged.replace(b"To: support@example.com",
                                  b"To: support+esc.0123456789abcdef.abcdefghijklmnopqrstuvwxyz@example.com", 1))
    cycle(cli, 21)
    assert show(cli)["status"] == "open"
