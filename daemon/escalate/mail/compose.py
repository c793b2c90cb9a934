"""Build outgoing mail whose headers customer text cannot break.

Python 3.11.7 here lacks the CVE-2024-6923 fix: an encoded newline in a header value can
serialise into a real header, and a raw newline in a decoded subject raises.
So every header value built from customer text goes through `clean_header_text`, and after
building we parse our own bytes back and check that the header set is exactly what we
wrote (no header injection).
"""

from __future__ import annotations

import email
import email.headerregistry
import email.policy
import re
import unicodedata
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

# C0 and C1 controls, DEL, and the Unicode line/paragraph separators
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u0085]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]*\?[bqBQ]\?[^?\s]*\?=")
MAX_HEADER_TEXT = 200
# A subject people can read in a mail list; the full one stays on the ticket (a hostile 1 MB
# subject would otherwise be hundreds of header lines in every tier's inbox).
MAX_SUBJECT = 160
MAX_LINE = 998  # RFC 5322 2.1.1: no header line longer, whatever the content
# a Message-ID we can thread with: visible ASCII without brackets, short enough for one header line
_THREADABLE_ID = re.compile(r"[!-;=?-~]{1,900}")
MAX_REFERENCES = 20  # the thread's first message and the latest ones, as mail clients keep them
_UNFOLDED_ASCII = email.policy.SMTP.clone(max_line_length=MAX_LINE)


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
        cut = text[: limit - 1]
        if " " in cut[-20:]:  # end on a whole word when one ends near the limit
            cut = cut[: cut.rindex(" ")]
        text = cut.rstrip() + "…"
    return text


def build_mail(*, mail_from: str, from_name: str, to: list[str], subject: str, text: str, html: str,
               message_id: str, date: datetime, in_reply_to: str | None = None,
               references: list[str] | tuple[str, ...] = (), reply_to: str | None = None,
               extra_headers: dict[str, str] | None = None) -> bytes:
    """A multipart/alternative message as bytes, with threading and anti-loop headers."""
    subject = clean_header_text(subject, limit=MAX_SUBJECT)
    # The stdlib folds some ASCII subjects (e.g. with an address in them) right after "Subject:",
    # which readers show with a leading space; an ASCII subject this short needs no folding (RFC
    # 5322's hard limit is 998). Non-ASCII subjects need encoded words: default folding. An address
    # that is not ASCII (a customer josé@…) cannot be an encoded word: such mail is written as UTF-8
    # (RFC 6532), which the sender sends only through a server that offers SMTPUTF8.
    if not all(address.isascii() for address in (mail_from, *to)):
        policy = email.policy.SMTPUTF8
    else:
        policy = _UNFOLDED_ASCII if subject.isascii() else email.policy.SMTP
    msg = EmailMessage(policy=policy)
    msg["Subject"] = subject
    msg["From"] = email.headerregistry.Address(display_name=clean_header_text(from_name, 80),
                                               addr_spec=mail_from)
    msg["To"] = ", ".join(to)
    if reply_to:
        msg["Reply-To"] = reply_to
    msg["Date"] = format_datetime(date)
    # RFC 3834: we are an automatic sender; Exchange: do not answer us with out-of-office mail
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    for name, value in (extra_headers or {}).items():
        msg[name] = clean_header_text(value)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    head, body = msg.as_bytes().split(b"\r\n\r\n", 1)
    threading = _threading_lines(message_id, in_reply_to, references)
    raw = head + b"\r\n" + b"\r\n".join(line for _, line in threading) + b"\r\n\r\n" + body
    _verify_headers(raw, expected=[name.lower() for name in msg.keys()] + [name for name, _ in threading])
    return raw


def _threading_lines(message_id: str, in_reply_to: str | None,
                     references: list[str] | tuple[str, ...]) -> list[tuple[str, bytes]]:
    """Message-ID, In-Reply-To and References, written here rather than by the stdlib: under its
    78-column folding (any non-ASCII subject) it turns a Message-ID longer than a line — Outlook's
    are about 80 characters — into encoded words, on which no mail client threads. Each ID is
    checked to be one visible-ASCII token, so none can carry a line break; an ID that is not
    (a customer's 990-character or 8-bit one) is left out rather than mangled."""
    if not _THREADABLE_ID.fullmatch(message_id):
        raise UnsafeMail(f"our own Message-ID {message_id[:80]!r} is not a plain token")
    lines = [("message-id", f"Message-ID: <{message_id}>")]
    if in_reply_to and _THREADABLE_ID.fullmatch(in_reply_to):
        lines.append(("in-reply-to", f"In-Reply-To: <{in_reply_to}>"))
    usable = [ref for ref in references if _THREADABLE_ID.fullmatch(ref)]
    if len(usable) > MAX_REFERENCES:  # a long thread: its first message and the latest ones
        usable = usable[:1] + usable[-(MAX_REFERENCES - 1):]
    if usable:
        folded = "References:"
        width = len(folded)
        for ref in usable:
            token = f"<{ref}>"
            if width + 1 + len(token) > 78 and width > len("References:"):
                folded += "\r\n"  # fold between IDs, never inside one
                width = 0
            folded += " " + token
            width += 1 + len(token)
        lines.append(("references", folded))
    return [(name, line.encode("ascii")) for name, line in lines]


def _verify_headers(raw: bytes, expected: list[str]) -> None:
    # only the top-level header block matters here; parsing the bodies again would double the cost
    head = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
    reparsed = email.message_from_bytes(head, policy=email.policy.compat32)
    found = [name.lower() for name in reparsed.keys()]
    if sorted(found) != sorted(expected):
        raise UnsafeMail(f"built message has headers {found}, expected {expected}")
    longest = max(len(line) for line in head.split(b"\r\n"))
    if longest > MAX_LINE:
        raise UnsafeMail(f"built message has a header line of {longest} characters (at most {MAX_LINE})")
