"""Is this mail already stored? One stored message per mail, and no mail dropped for looking like another.

A mail's identity is its full Message-ID together with the other headers its author's client wrote
once and every copy keeps: From, Sender, Reply-To, To, Cc, Subject, Date, In-Reply-To, References,
read raw from the header block (whitespace runs counted as one, so a refolded copy is the same
mail), however long they are. The dedupe key is the sha256 of them. Two mails are one only when
their identity and their body are the same — a second delivery, a copy in another folder, a rescan
after UIDVALIDITY changed — whatever the transport headers (Received, Delivered-To) say.

- the very same bytes again: a duplicate (found by the sha256 of the raw mail);
- same identity, same body: a duplicate;
- same identity, another body (a true collision of the key): stored as a message of its own, its
  key made unique with the mail's sha256, and flagged;
- the same Message-ID under another identity (another From, Subject, Date …): stored, and flagged
  as a Message-ID collision too, since threading by that Message-ID is now ambiguous;
- no Message-ID: the key is the sha256 of the raw mail, as before.

Rows stored before these keys (keyed by the Message-ID itself) are compared by recomputing their
identity from their raw bytes, so a rescan after an upgrade stores nothing twice.
"""

from __future__ import annotations

import hashlib
import re

from escalate.mail.parse import ParsedMail
from escalate.store import messages

KEY_PREFIX = "id:"
IDENTITY_HEADERS = ("message-id", "from", "sender", "reply-to", "to", "cc", "subject", "date", "in-reply-to",
                    "references")
# stored mails with this Message-ID read back to compare bodies: a flood of one Message-ID with
# ever other bodies cannot make each new one read all before it (past this: stored, flagged)
MAX_COMPARED = 50

# lines end as the parser ends them: CRLF, CR or LF; the header block at the first empty line
_BREAK = rb"(?:\r\n|\r(?!\n)|\n)"
_BLANK_LINE = re.compile(_BREAK + _BREAK)
_FIELD = re.compile(rb"(?:\A|(?<=[\r\n]))(" + b"|".join(name.encode() for name in IDENTITY_HEADERS) +
                    rb")[ \t]*:([^\r\n]*(?:" + _BREAK + rb"[ \t][^\r\n]*)*)", re.IGNORECASE)
_IDENTITY_NAMES = tuple(name.encode() for name in IDENTITY_HEADERS)
_OUR_KEY = re.compile(r"^id:[0-9a-f]{64}(?:#sha256:[0-9a-f]{64})?$")


def identity_key(raw: bytes) -> str:
    """The sha256 of the identity headers' raw values, in a fixed order, each one length-framed."""
    block = raw[:_header_end(raw)[0]]
    values: dict[bytes, list[bytes]] = {}
    for name, value in _FIELD.findall(block):
        values.setdefault(name.lower(), []).append(b" ".join(value.split()))
    framed = [b"%s:%d:%s\n" % (name, len(value), value) for name in _IDENTITY_NAMES for value in values.get(name, ())]
    return KEY_PREFIX + hashlib.sha256(b"".join(framed)).hexdigest()


def body_digest(raw: bytes) -> str:
    """The sha256 of everything after the header block, line ends made alike."""
    body = raw[_header_end(raw)[1]:]
    return hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest()


def _header_end(raw: bytes) -> tuple[int, int]:
    """(where the header block ends, where the body starts); (len, len) when there is no body."""
    blank = _BLANK_LINE.search(raw)
    return (blank.start(), blank.end()) if blank else (len(raw), len(raw))


def dedupe_key(parsed: ParsedMail, raw: bytes) -> tuple[str | None, bool]:
    """(dedupe key, flagged as a collision?) — None when this mail is already stored (its lookups:
    store/messages.py, which runs for every mail)."""
    if not parsed.message_id:
        key = f"sha256:{parsed.sha256}"
        return (None, False) if messages.dedupe_key_exists(key) else (key, False)
    key = identity_key(raw)
    # one query for both: the rows with this Message-ID, and a row that has this key already
    # (headers broken enough to read one way to the parser and another here)
    found = messages.by_message_id_or_key(parsed.message_id, key)
    if not found:
        return key, False
    if any(sha256 == parsed.sha256 for _, sha256, _, _ in found):
        return None, False  # the very same bytes
    same_id = [(row_id, stored_key) for row_id, _, stored_key, message_id in found if message_id == parsed.message_id]
    key_taken = any(stored_key == key for _, _, stored_key, _ in found)
    body = None
    same_identity = False
    for row_id, stored_key in same_id[:MAX_COMPARED]:
        known = _OUR_KEY.match(stored_key) is not None
        if known and stored_key != key and not stored_key.startswith(key + "#"):
            continue  # another identity, told by its key alone
        stored = messages.raw(row_id)
        if not known and identity_key(stored) != key:
            continue  # stored before identity keys: its identity recomputed, and another
        same_identity = True
        body = body or body_digest(raw)
        if body_digest(stored) == body:
            return None, False  # the same mail delivered again, under other transport headers
    if same_identity or key_taken or len(same_id) > MAX_COMPARED:
        return _unique(key, parsed)
    return key, True


def _unique(key: str, parsed: ParsedMail) -> tuple[str | None, bool]:
    """The key of a second mail with one identity: with its own sha256 (stored already: the same bytes)."""
    unique = f"{key}#sha256:{parsed.sha256}"
    if messages.dedupe_key_exists(unique):
        return None, False
    return unique, True
