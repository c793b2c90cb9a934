"""The reply-layout corpus (tests/data/replies/): a real client's reply to a notification a test received.

    raw = corpus_reply("outlook-ru", notification, sender="alice@example.com", text="Thanks, looking at it.")

Each file is the mail that client sends, with placeholders for what differs per run (see the
README beside the files); the body is encoded with the charset and transfer encoding the file's
own headers name, as that client would encode it.
"""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
import secrets
from email.message import EmailMessage
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "data" / "replies"
LAYOUTS = sorted(path.stem for path in CORPUS.glob("*.eml"))


def notification_text(notification: EmailMessage) -> str:
    return notification.get_body(("plain",)).get_content()


def corpus_reply(layout: str, notification: EmailMessage, *, sender: str, text: str) -> bytes:
    template = (CORPUS / f"{layout}.eml").read_text(encoding="utf-8").replace("\r\n", "\n")
    head, _, body = template.partition("\n\n")
    lines = notification_text(notification).rstrip("\n").split("\n")
    values = {
        "from": sender,
        "subject": str(notification["Subject"]),
        "in_reply_to": notification["Message-ID"],
        "message_id": f"<{secrets.token_hex(10)}@{layout}.client.example>",
        "reply": text,
        "quoted": "\n".join(lines),
        "quoted_gt": "\n".join("> " + line if line else ">" for line in lines),
    }
    for name, value in values.items():
        head = head.replace("{{" + name + "}}", value)
        body = body.replace("{{" + name + "}}", value)
    headers = email.message_from_string(head + "\n\n", policy=email.policy.compat32)
    charset = headers.get_content_charset() or "us-ascii"
    # a client writes what its charset cannot hold as "?" (the notification's own text is ASCII)
    data = body.replace("\n", "\r\n").encode(charset, "replace")
    encoding = (headers["Content-Transfer-Encoding"] or "7bit").strip().lower()
    if encoding == "quoted-printable":
        data = quopri.encodestring(data)
    elif encoding == "base64":
        data = base64.encodebytes(data)
    return head.replace("\n", "\r\n").encode("ascii") + b"\r\n\r\n" + data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
