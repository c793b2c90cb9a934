"""No header injection: customer text in a subject never becomes a header,
on this machine's unpatched Python."""

import email
import email.policy
from datetime import datetime, timezone

import pytest
from escalate.mail.compose import build_mail, clean_header_text

HOSTILE_SUBJECTS = [
    "raw crlf\r\nBcc: evil@example.net",
    "bare lf\nBcc: evil@example.net",
    "bare cr\rBcc: evil@example.net",
    "trailing newline\n",
    "A subject=?UTF-8?Q?=0A?=Bcc: evil@example.net",
    "line\u2028separator Bcc: evil@example.net",
    "next\u0085line",
    "nul\x00byte",
    "x" * 10_000,
]


@pytest.mark.parametrize("subject", HOSTILE_SUBJECTS)
def test_hostile_subject_keeps_the_header_set(subject):
    raw = build_mail(mail_from="support@example.com", from_name="Support", to=["tier1@example.com"],
                     subject=f"[T-1] Escalation: {subject}", text="body", html="<p>body</p>",
                     message_id="esc.x@example.com", date=datetime(2026, 11, 2, tzinfo=timezone.utc),
                     in_reply_to="c1@customer.example", references=["c1@customer.example"])
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert sorted(k.lower() for k in parsed.keys()) == sorted([
        "subject", "from", "to", "date", "message-id", "in-reply-to", "references", "auto-submitted",
        "x-auto-response-suppress", "mime-version", "content-type"])
    assert parsed["Bcc"] is None
    decoded = str(parsed["Subject"])
    assert "\n" not in decoded and "\r" not in decoded
    assert decoded.startswith("[T-1] Escalation:")
    assert len(decoded) <= 250


def test_clean_header_text_keeps_ordinary_text_readable():
    assert clean_header_text("  Re:  Überweisung   fehlgeschlagen ") == "Re: Überweisung fehlgeschlagen"
    assert clean_header_text("a\tb") == "a b"
