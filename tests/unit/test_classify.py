"""Machine mail is recognised and people's mail is not: one table of fixture files in
tests/data/mail with the expected verdict, decoded subject and sender (Zammad-style), growing a
line per sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from escalate.mail.classify import classify
from escalate.mail.parse import UnparseableMail, parse_message

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"

# file: (verdict kind or "human" or "quarantine", decoded subject or None, sender or None)
EXPECTED = {
    "bounce_postfix_dsn.eml": ("bounce", "Undelivered Mail Returned to Sender", "mailer-daemon@mx.example.com"),
    "bounce_exim.eml": ("bounce", None, "mailer-daemon@exim.example.org"),
    "bounce_qmail.eml": ("bounce", "failure notice", None),
    "bounce_exchange_ndr.eml": ("bounce", "Undeliverable: [T-5] Escalation", "postmaster@corp.example"),
    "bounce_gmail_dsn.eml": ("bounce", None, "mailer-daemon@googlemail.com"),
    "bounce_yahoo.eml": ("bounce", None, None),
    "bounce_sendmail.eml": ("bounce", None, None),
    "bounce_groupwise.eml": ("bounce", None, None),
    "auto_reply_rfc3834.eml": ("auto-reply", None, "away@customer.example"),
    "auto_reply_outlook.eml": ("auto-reply", "Automatic reply: Printer on fire", None),
    "auto_reply_x_autoreply.eml": ("auto-reply", None, None),
    "list_id.eml": ("list", None, None),
    "bulk_precedence.eml": ("bulk", None, None),
    "junk_gtube.eml": ("bulk", None, None),
    "newsletter_unsubscribe.eml": ("bulk", None, None),
    "human_gmail.eml": ("human", "Cannot download my invoice", "jose.garcia@gmail.com"),
    "human_outlook.eml": ("human", "RE: Export fails", "brenda.miller@contoso.example"),
    "human_apple_mail.eml": ("human", "Sync stopped working", "tim@apfel.example"),
    "human_thunderbird.eml": ("human", "Fehler beim Öffnen", "klaus@linux.example"),
    "human_iphone.eml": ("human", "App crashes on login", "mia@icloud.example"),
    "human_android.eml": ("human", "Payment declined twice", "ravi@android.example"),
    "human_yahoo.eml": ("human", "Password reset mail never arrives", "pat@yahoo.example"),
    "human_protonmail.eml": ("human", "Two-factor codes rejected", "sam@proton.example"),
    "human_forwarded_bounce.eml": ("human", "Fwd: Undelivered Mail Returned to Sender", "carla@customer.example"),
    "hard_8bit_headers.eml": ("human", "Grüße aus Köln", "mueller@example.de"),
    "hard_base64_garbage.eml": ("human", "base64 garbage", None),
    "hard_broken_to.eml": ("human", "broken To and Cc", "broken@to.example"),
    "hard_cp850_body.eml": ("human", "cp-850 body", None),
    "hard_exchange_bracket_id.eml": ("human", "bracketed id", None),
    "hard_group_syntax.eml": ("human", "group syntax", None),
    "hard_html_abuse.eml": ("human", "many links", None),
    "hard_invalid_date.eml": ("human", "invalid date", None),
    "hard_iso2022jp.eml": ("human", "問題があります", "yamada@example.jp"),
    "hard_malicious_from.eml": ("human", "ambiguous sender", None),
    "hard_missing_boundary.eml": ("human", None, None),
    "hard_nested_rfc822.eml": ("human", "nested", None),
    "hard_no_charset_8bit.eml": ("human", None, None),
    "hard_no_message_id.eml": ("human", None, None),
    "hard_rfc2047.eml": ("human", "Prüfung der Straße✓line break", "francois@fr.example"),
    "hard_rfc2231_filename.eml": ("human", None, None),
    "hard_utf7_koi8.eml": ("human", "Привет", "ivan@example.ru"),
    "poison_no_headers.eml": ("quarantine", None, None),
}


def test_every_fixture_has_an_expectation():
    assert sorted(p.name for p in MAIL.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_verdict(name):
    kind, subject, sender = EXPECTED[name]
    raw = (MAIL / name).read_bytes()
    if kind == "quarantine":
        with pytest.raises(UnparseableMail):
            parse_message(raw)
        return
    parsed = parse_message(raw)
    verdict = classify(parsed, raw)
    assert (verdict.kind if verdict else "human") == kind, verdict
    if subject is not None:
        assert parsed.subject == subject
    if sender is not None:
        assert parsed.from_addr == sender
    if kind == "bounce":
        assert verdict.bounce is not None and verdict.bounce.failed_recipients or verdict.bounce.original_message_ids


def test_bounce_names_the_failed_recipient_and_the_original_message():
    raw = (MAIL / "bounce_postfix_dsn.eml").read_bytes()
    verdict = classify(parse_message(raw), raw)
    assert verdict.bounce.failed_recipients == ("gone@tier.example",)
    assert verdict.bounce.original_message_ids == ("esc.0123456789abcdef.abcdefghijklmnopqrstuvwxyz@example.com",)


def test_rfc2231_filename_is_reassembled():
    parsed = parse_message((MAIL / "hard_rfc2231_filename.eml").read_bytes())
    assert [a.filename for a in parsed.attachments] == ["Rechnung für Ärger.pdf"]
    assert parsed.attachments[0].data.startswith(b"%PDF")


@pytest.mark.parametrize("headers, kind", [
    ({"Auto-Submitted": "no"}, None),
    ({"Auto-Submitted": "auto-generated"}, "auto-generated"),
    ({"Auto-Submitted": "auto-replied; owner-email=x@y"}, "auto-reply"),
    ({"Precedence": "auto_reply"}, "auto-reply"),
    ({"X-Autorespond": "vacation"}, "auto-reply"),
    ({"X-Autoreply": "no"}, None),
    ({"List-Id": "<a.b.c>"}, "list"),
    ({"Importance": "high"}, None),
])
def test_header_signals(headers, kind):
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (f"From: someone@example.org\r\nTo: support@example.com\r\nSubject: hello\r\n{lines}\r\nbody\r\n").encode()
    verdict = classify(parse_message(raw), raw)
    assert (verdict.kind if verdict else None) == kind
