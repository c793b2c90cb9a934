"""Build outgoing mail whose headers customer text cannot break.

Python 3.11.7 here lacks the CVE-2024-6923 fix: an encoded newline in a header value can
serialise into a real header, and a raw newline in a decoded subject raises (RELIABILITY.md 1.9).
So every header value built from customer text goes through `clean_header_text`, and after
building we parse our own bytes back and check that the header set is exactly what we wrote (S8).
"""

from __future__ import annotations

import email
import email.policy
import re
import unicodedata
from email.message import EmailMessage
from email.utils import format_datetime
from datetime import datetime

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u0085]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bqBQ]\?[^?\s]*\?=")
MAX_HEADER_TEXT = 200
_UNFOLDED_ASCII = email.policy.SMTP.clone(max_line_length=998)


class UnsafeMail(RuntimeError):
    """Our own built message does not have the headers we wrote: refuse to send it."""


def clean_header_text(text: str, limit: int = MAX_HEADER_TEXT) -> str:
    """Customer text made safe for one header line: no controls or line breaks, no
    encoded-word syntax that a reader would decode into a newline, bounded length."""
    text = _CONTROLS.sub(" ", text)
    text = _ENCODED_WORD.sub(lambda m: m.group(0).replace("=?", "=\u200b?"), text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf") or ch == "\u200b")
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def build_mail(*, mail_from: str, from_name: str, to: list[str], subject: str, text: str, html: str,
               message_id: str, date: datetime, in_reply_to: str | None = None,
               references: list[str] | tuple[str, ...] = (), reply_to: str | None = None,
               extra_headers: dict[str, str] | None = None) -> bytes:
    """A multipart/alternative message as bytes, with threading and anti-loop headers."""
    subject = clean_header_text(subject, limit=250)
    # The stdlib folds some ASCII subjects (e.g. with an address in them) right after "Subject:",
    # which readers show with a leading space; an ASCII subject of ≤ 250 characters needs no
    # folding (RFC 5322's hard limit is 998). Non-ASCII subjects need encoded words: default folding.
    policy = _UNFOLDED_ASCII if subject.isascii() else email.policy.SMTP
    msg = EmailMessage(policy=policy)
    msg["Subject"] = subject
    msg["From"] = email.headerregistry.Address(display_name=clean_header_text(from_name, 80),
                                               addr_spec=mail_from)
    msg["To"] = ", ".join(to)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{ref}>" for ref in references)
    # RFC 3834: we are an automatic sender; Exchange: do not answer us with out-of-office mail
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in (extra_headers or {}).items():
        msg[name] = clean_header_text(value)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    raw = msg.as_bytes()
    _verify_headers(raw, expected=[name.lower() for name in msg.keys()])
    return raw


def _verify_headers(raw: bytes, expected: list[str]) -> None:
    # only the top-level header block matters here; parsing the bodies again would double the cost
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    reparsed = email.message_from_bytes(head, policy=email.policy.compat32)
    found = [name.lower() for name in reparsed.keys()]
    if sorted(found) != sorted(expected):
        raise UnsafeMail(f"built message has headers {found}, expected {expected}")
