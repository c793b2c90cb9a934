"""What a tier member wrote in a reply to a notification, knowing exactly what that notification said.

The quote detector in parse.py reads attribution lines and header blocks in the languages it knows;
a client in any other language (Outlook in Russian writes "От:", "Отправлено:", QQ Mail "发件人:")
quotes our notification inline with nothing it recognises, and the notification's own lines would
pass for new text. But escalate sent that notification and keeps its rendered bytes: any line of
the reply that is also a line of the notification (in its text or its HTML part) is quoted text,
whatever header precedes it.

    own = reply_text(parsed.new_text, notification.raw)

A line counts as the notification's when, with quote marks, spacing and case set aside, it equals
one of the notification's lines, or — for a line long enough not to match by chance — it is part of
one (clients re-wrap long lines when they quote). The one exception is the reply's first line with
text when it is a command: no notification begins with one, so it is what the member typed, even if
the customer's quoted message happens to hold the same line.
"""

from __future__ import annotations

import re
import unicodedata

from escalate.mail.parse import UnparseableMail, html_to_text, parse_message

# a re-wrapped fragment shorter than this could match the notification by chance ("Thanks,")
MIN_FRAGMENT_CHARS = 16
_QUOTE_MARKS = re.compile(r"^(?:\s*>)+")
_SPACES = re.compile(r"\s+")


def normalise(line: str) -> str:
    """A line as compared: without quote marks, with one space between words, case folded."""
    line = unicodedata.normalize("NFKC", line)
    return _SPACES.sub(" ", _QUOTE_MARKS.sub("", line)).strip().casefold()


class Notification:
    """The lines of one sent notification, ready to be looked up."""

    def __init__(self, raw: bytes | None):
        self.lines: frozenset[str] = frozenset()
        self.text = ""
        if not raw:
            return
        try:
            sent = parse_message(bytes(raw))
        except UnparseableMail:
            return
        texts = [sent.text] + ([html_to_text(sent.html)] if sent.html else [])
        lines = {normalise(line) for text in texts for line in text.splitlines()}
        lines.discard("")
        self.lines = frozenset(lines)
        self.text = "\n".join(sorted(lines))

    def quotes(self, line: str) -> bool:
        """Whether this reply line is a line (or a re-wrapped piece of a line) of the notification."""
        key = normalise(line)
        if not key:
            return False
        return key in self.lines or (len(key) >= MIN_FRAGMENT_CHARS and key in self.text)


def reply_text(new_text: str, notification_raw: bytes | None) -> str:
    """`new_text` without the lines it quotes from the notification it answers."""
    sent = Notification(notification_raw)
    if not sent.lines:
        return new_text
    from escalate.tickets.commands import is_command_line  # commands reads replies' text; import late to keep the layers apart

    kept: list[str] = []
    first = True
    for line in new_text.splitlines():
        if not line.strip():
            kept.append(line)
            continue
        if (first and is_command_line(line)) or not sent.quotes(line):
            kept.append(line)
        first = False
    return "\n".join(kept).strip()
