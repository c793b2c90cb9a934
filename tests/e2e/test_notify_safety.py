"""Hostile customer mail through the whole loop (real Dovecot, real aiosmtpd): its text is data in
the templates, escaped in HTML, never a header or a recipient (on this machine's
Python 3.11.7 without the CVE-2024-6923 fix), and our control headers in inbound mail mean
nothing."""

from __future__ import annotations

import email
import email.policy
import json
from datetime import timedelta
from email.header import Header

from escalate.clock import parse_time

T0 = "2026-11-02T09:00:00+00:00"
OUR_HEADERS = sorted(["subject", "from", "to", "reply-to", "date", "message-id", "auto-submitted",
                      "x-auto-response-suppress", "x-escalate-ticket", "x-escalate-kind", "mime-version",
                      "content-type", "in-reply-to", "references"])


def at(minutes: int) -> str:
    return (parse_time(T0) + timedelta(minutes=minutes)).isoformat()


def cycle(cli, minutes: int) -> dict:
    return json.loads(cli("run", "--once", "--now", at(minutes), "--json").output)


def raw_mail(subject_header: str, body: str, sender: str = "carl@customer.example", extra: str = "") -> bytes:
    """Mail bytes as a (hostile) client writes them; the Subject line is given already encoded."""
    return (f"From: {sender}\r\nTo: support@example.com\r\nSubject: {subject_header}\r\n"
            f"Message-ID: <{abs(hash((subject_header, body)))}@client.example>\r\n"
            f"Date: Mon, 02 Nov 2026 09:00:00 +0000\r\n{extra}MIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n").encode()


def test_template_syntax_and_markup_from_a_customer_stay_text(cli, dovecot, smtp_sink, mail):
    subject = "Site down {{ 7*7 }} <script>alert(1)</script>"
    body = ("{% for x in range(10**9) %}{% endfor %} {{ ''.__class__.__mro__ }} {{ config }}\n"
            '"><img src=x onerror=alert(1)>')
    dovecot.append(mail(sender="carl@customer.example", subject=subject, body=body))
    cycle(cli, 0)
    cycle(cli, 16)
    [sent] = smtp_sink.wait_for(1)
    assert "{{ 7*7 }} <script>alert(1)</script>" in sent.message["Subject"]
    text = sent.message.get_body(("plain",)).get_content()
    html = sent.message.get_body(("html",)).get_content()
    for literal in ("{{ 7*7 }}", "{% for x in range(10**9) %}", "{{ ''.__class__.__mro__ }}", "{{ config }}",
                    "<script>alert(1)</script>", '"><img src=x onerror=alert(1)>'):
        assert literal in text, literal
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "{{ 7*7 }}" in html and "49" not in text.split("History")[0].replace("2049", "")


HOSTILE_SUBJECTS = [
    "raw crlf\r\nBcc: evil@attacker.example",
    "bare lf\nBcc: evil@attacker.example",
    "bare cr\rBcc: evil@attacker.example",
    "trailing newline\n",
    "A subject=?UTF-8?Q?=0A?=Bcc: evil@attacker.example",
    "line\u2028separator Bcc: evil@attacker.example",
    "next\u0085line To: evil@attacker.example",
    "nul\x00byte",
    "x" * 10_000,
]


def test_customer_subjects_never_become_headers_or_recipients(cli, dovecot, smtp_sink):
    for index, hostile in enumerate(HOSTILE_SUBJECTS):
        # an attacker gets CR, LF, NUL and friends into a decoded subject through RFC 2047
        encoded = Header(f"Site down {index} {hostile}", "utf-8").encode(maxlinelen=10_000)
        dovecot.append(raw_mail(encoded, f"Report {index}", sender=f"c{index}@customer.example"))
    dovecot.append(raw_mail("A subject=?UTF-8?Q?=0A?=Bcc: evil@attacker.example down", "literal",
                            sender="d@customer.example"))
    cycle(cli, 0)
    tickets = json.loads(cli("tickets", "list", "--json").output)
    assert len(tickets) == len(HOSTILE_SUBJECTS) + 1
    cycle(cli, 16)
    sent = smtp_sink.wait_for(len(tickets))
    assert len(sent) == len(tickets)  # every notification still went out
    for mail in sent:
        assert mail.rcpt_tos == ["tier1@example.com"]  # the roster's address, nothing from the subject
        reparsed = email.message_from_bytes(mail.data, policy=email.policy.compat32)
        assert sorted(name.lower() for name in reparsed.keys()) == OUR_HEADERS
        subject = str(mail.message["Subject"])
        assert subject.startswith("[T-") and "\n" not in subject and "\r" not in subject and "\x00" not in subject
        assert len(subject) <= 250
        assert b"\nBcc:" not in mail.data and b"\nbcc:" not in mail.data.lower().split(b"\r\n\r\n")[0]


def test_inbound_control_headers_are_ignored(cli, dovecot, smtp_sink, mail):
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="502 at payment",
                        message_id="c1@customer.example"))
    cycle(cli, 0)
    stuffed = {"X-Escalate-Ticket": "T-1", "X-Escalate-Kind": "confirmation", "X-Escalate-Command": "resolve",
               "X-Escalate-Token": "esc.0000000000000000.aaaaaaaaaaaaaaaaaaaaaaaaaa@example.com"}
    # a stranger claims, by header, to belong to T-1; a roster member "resolves" by header and body
    dovecot.append(mail(sender="eve@stranger.example", subject="Refund my order now, it is down", body="Pay me",
                        headers=stuffed))
    dovecot.append(mail(sender="alice@example.com", subject="Other outage", body="#resolve\n", headers=stuffed))
    cycle(cli, 1)
    listed = {t["ref"]: t for t in json.loads(cli("tickets", "list", "--json").output)}
    t1 = json.loads(cli("tickets", "show", "T-1", "--json").output)
    assert t1["status"] == "new" and t1["message_count"] == 1  # nothing joined T-1 by header
    assert "eve@stranger.example" not in {m["from"] for m in t1["messages"]}
    assert not any(e["action"] in ("resolved", "acknowledged") for e in t1["events"])
    assert any(t["requester"] == "eve@stranger.example" for t in listed.values())
    cycle(cli, 16)
    sent = smtp_sink.wait_for(2)
    for notification in sent:
        # our headers carry our values only, once each; none of the inbound ones is copied
        assert len(notification.message.get_all("X-Escalate-Ticket")) == 1
        assert notification.message["X-Escalate-Kind"] == "escalation"
        assert notification.message["X-Escalate-Command"] is None and notification.message["X-Escalate-Token"] is None
    by_ticket = {n.message["X-Escalate-Ticket"]: n for n in sent}
    assert "T-1" in by_ticket and "Checkout is down" in by_ticket["T-1"].message["Subject"]
