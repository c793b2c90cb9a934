"""Parse: the raw bytes of one mail → one plain, immutable `ParsedMail`, whatever the bytes are.

    from escalate.mail.parse import parse_message, UnparseableMail
    try:
        mail = parse_message(raw)          # never raises anything else, for any bytes
    except UnparseableMail as error:
        quarantine(raw, error.reason)
    mail.new_text                          # what the person just wrote: commands are read from here

The standard library's `email` package parses lazily and raises at *access* time — and, for a
broken Content-Type, already inside `message_from_bytes` (known malformed-header inputs). So every access
below is guarded and has a fallback that records a defect instead of raising:

- structure: `compat32` (it does only the MIME split; policy.default's structured header parser
  is ~3× slower, and raises on those inputs) → headers only, the body kept as text;
- header text: our own RFC 2047 decoder over the raw value, so an unknown charset maps through
  `email.charset.ALIASES`/codec-name normalisation or falls back, noted as `charset-fallback:NAME`;
- structured headers (From, To, Cc, Date) go through the stdlib parser with a size cap, and fall
  back to a tolerant regex (To/Cc) or to None (From, Date);
- Message-IDs never touch the stdlib parser (Exchange's `<[id@host]>` crashes it): a regex over
  `<…>` groups, whitespace tokens as a fallback.

Work is bounded: header values, parts, HTML and text are capped, and every cap that bites leaves
a defect note, so a 10 MB header line or 10,000 parts cost about a second, not minutes.
"""

from __future__ import annotations

import binascii
import codecs
import email
import email.charset
import email.errors
import email.parser
import email.utils
import functools
import hashlib
import html as html_lib
import re
import urllib.parse
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.message import Message
from email.policy import Compat32
from typing import Iterable

from escalate.mail.mimetree import split_mime

__all__ = ["Attachment", "ParsedMail", "UnparseableMail", "extract_new_text", "html_to_text", "parse_message"]

# Limits. Each one that bites adds a defect note; none of them is reached by ordinary mail.
MAX_HEADERS = 2_000            # header fields read from the top-level header block
MAX_HEADER_CHARS = 64_000      # raw characters of one header value that we decode
MAX_STRUCTURED_CHARS = 8_192   # characters handed to the stdlib's structured-header parser
MAX_ADDRESS_PARSE_CHARS = 65_536  # total To/Cc characters given to the stdlib parser per mail
MAX_PARTS = 1_000              # MIME parts walked
MAX_TEXT_CHARS = 1_000_000     # characters kept of the text/plain body
MAX_HTML_CHARS = 1_000_000     # characters of HTML kept and converted to text
MAX_IDS = 200                  # ids kept from In-Reply-To / References
MAX_DEFECTS = 100


@dataclass(frozen=True)
class Attachment:
    filename: str | None      # decoded (RFC 2231/2047), sanitised: no path separators or controls, ≤ 255 chars
    content_type: str
    size: int                 # decoded payload bytes
    # the decoded bytes of a leaf part (None for an embedded message): attachments.py stores them
    data: bytes | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class ParsedMail:
    message_id: str | None    # bare id without angle brackets; None if absent/empty
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str              # decoded, one line: controls removed, whitespace folded
    from_addr: str | None     # lowercased addr-spec of the single From mailbox; None if unparseable or ambiguous
    from_name: str
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    date: datetime | None     # aware, UTC; None when missing/invalid
    text: str                 # best plain-text body (text/plain, else the HTML part converted)
    html: str | None          # the text/html part, decoded, if any
    new_text: str             # `text` without quoted history and signature
    attachments: tuple[Attachment, ...]
    headers: tuple[tuple[str, str], ...]   # every header (name, decoded one-line value), in order
    defects: tuple[str, ...]  # email.errors defect class names + our notes ("charset-fallback:cp-850", …)
    sha256: str               # hex digest of the raw bytes
    size: int                 # len(raw)

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


class UnparseableMail(Exception):
    """Raised only when nothing usable can be read (empty input, no header at all): `UnparseableMail(reason)`."""

    @property
    def reason(self) -> str:
        return str(self.args[0])


# --------------------------------------------------------------------------------------------
# entry points


def parse_message(raw: bytes) -> ParsedMail:
    """Parse one mail. Raises UnparseableMail when nothing usable is in it, and nothing else."""
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if not isinstance(raw, bytes):
        raise TypeError(f"parse_message() takes bytes, not {type(raw).__name__}")
    if not raw.strip():
        raise UnparseableMail("empty message")
    try:
        return _parse(raw)
    except UnparseableMail:
        raise
    except Exception as error:  # every step guards itself; this is the last line of defence
        raise UnparseableMail(f"parser failure: {type(error).__name__}") from error


def extract_new_text(text: str) -> str:
    """The part of a reply its author just wrote: everything above the first quoted history,
    attribution line ("On … wrote:"), Outlook header block, signature separator or mobile footer.

    Text written between quote blocks is dropped on purpose: commands are read from this text,
    and an old `#resolve` anywhere in the history must never count again.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(lines[:_history_start(lines)]).strip()


# --------------------------------------------------------------------------------------------
# the parse


class _Budget:
    """Characters the stdlib's structured-header parser may still be given for one mail: it costs
    ~5-10 µs per character and is super-linear on long lists (100 KB of `a=b; `: 3 s)."""

    __slots__ = ("left",)

    def __init__(self, units: int):
        self.left = units


class _CappedCompat32(Compat32):
    """`policy.compat32` with the same value cap (its parameter parser is quadratic too)."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        if isinstance(value, str):
            value = value[:MAX_STRUCTURED_CHARS]
        return super().header_fetch_parse(name, value)  # type: ignore[return-value]  # a Header for 8-bit values, as compat32 gives


_COMPAT32 = _CappedCompat32()
_STDLIB_HEADERS = email.policy.default  # for our own capped, one-off structured header parses


class _Defects:
    """Ordered, de-duplicated, capped list of defect names and notes."""

    def __init__(self) -> None:
        self._seen: dict[str, None] = {}

    def add(self, note: str) -> None:
        if len(self._seen) < MAX_DEFECTS:
            self._seen.setdefault(note, None)

    def add_from(self, defects: Iterable[email.errors.MessageDefect] | None) -> None:
        for defect in list(defects or ())[:MAX_DEFECTS]:
            self.add(type(defect).__name__)

    def extend(self, other: _Defects) -> None:
        for note in other._seen:
            self.add(note)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._seen)


def _parse(raw: bytes) -> ParsedMail:
    defects = _Defects()
    message, mode = _load(raw, defects)
    fields = _read_headers(message, defects)
    if not fields:
        raise UnparseableMail("no headers found")
    body_defects = _Defects()
    body = _read_body(message, body_defects)
    if mode == "headers-only":
        body_defects.add("parse-fallback:headers-only")
    defects.extend(body_defects)
    text, html, attachments = body
    headers = _decode_headers(fields, defects)
    by_name = _values_by_name(fields)
    from_addr, from_name = _from(by_name.get("from", []), defects)
    return ParsedMail(
        message_id=_message_id(by_name.get("message-id", []), defects),
        in_reply_to=_id_list(by_name.get("in-reply-to", []), "In-Reply-To", defects),
        references=_id_list(by_name.get("references", []), "References", defects),
        subject=_subject(fields, headers, defects),
        from_addr=from_addr,
        from_name=from_name,
        to_addrs=_address_list(by_name.get("to", []), "To", defects, _Budget(MAX_ADDRESS_PARSE_CHARS)),
        cc_addrs=_address_list(by_name.get("cc", []), "Cc", defects, _Budget(MAX_ADDRESS_PARSE_CHARS)),
        date=_date(by_name.get("date", []), defects),
        text=text,
        html=html,
        new_text=extract_new_text(text),
        attachments=attachments,
        headers=headers,
        defects=defects.as_tuple(),
        sha256=hashlib.sha256(raw).hexdigest(),
        size=len(raw),
    )


def _load(raw: bytes, defects: _Defects) -> tuple[Message, str]:
    """compat32 → headers only. The structure comes from compat32: it never runs the structured
    header parser (policy.default's costs ~5-10 µs per character and raises on malformed-header inputs);
    everything we read from a header we decode ourselves, so nothing is lost by skipping it."""
    try:
        message = split_mime(raw, _COMPAT32)  # ordinary mail, without feeding every line through feedparser
        if message is not None:
            return message, "compat32"
    except Exception:  # never expected (split_mime gives up by returning None); the stdlib decides
        pass
    try:
        return email.message_from_bytes(raw, policy=_COMPAT32), "compat32"
    except Exception as error:
        defects.add(f"parse-error:{type(error).__name__}")
    return _headers_only(raw), "headers-only"


def _headers_only(raw: bytes) -> Message:
    """The header block parsed, everything after it kept as one text payload (no MIME)."""
    return email.parser.BytesParser(policy=_COMPAT32).parsebytes(raw, headersonly=True)


# --------------------------------------------------------------------------------------------
# headers


def _raw_items(message: Message) -> list[tuple[str, str]]:
    # raw_items() is the one accessor that does not run the value parser (which is what raises);
    # it has been there since 3.3 and the generator depends on it.
    try:
        return [(str(name), value if isinstance(value, str) else str(value)) for name, value in message.raw_items()]
    except Exception:
        return []


def _unfold(value: str) -> str:
    # The feedparser splits lines on CR, LF and CRLF, so inside a value they only occur as folding.
    return value.replace("\r", "").replace("\n", "")


def _read_headers(message: Message, defects: _Defects) -> list[tuple[str, str]]:
    """Top-level (name, unfolded raw value) pairs, capped in number and length."""
    fields = []
    for index, (name, value) in enumerate(_raw_items(message)):
        if index >= MAX_HEADERS:
            defects.add("header-limit")
            break
        name = _one_line(_unsurrogate(name))[:256]
        value = _unfold(value)
        if len(value) > MAX_HEADER_CHARS:
            defects.add(f"header-truncated:{name}")
            value = value[:MAX_HEADER_CHARS]
        fields.append((name, value))
    return fields


def _values_by_name(fields: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in fields:
        found.setdefault(name.lower(), []).append(value)
    return found


def _decode_headers(fields: list[tuple[str, str]], defects: _Defects) -> tuple[tuple[str, str], ...]:
    return tuple((name, _one_line(_decode_words(value, defects))) for name, value in fields)


def _subject(fields: list[tuple[str, str]], headers: tuple[tuple[str, str], ...], defects: _Defects) -> str:
    subjects = [decoded for (name, _), (_, decoded) in zip(fields, headers) if name.lower() == "subject"]
    if len(subjects) > 1:
        defects.add("duplicate-header:Subject")
    return subjects[0] if subjects else ""


_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")
_QP_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")


def _decode_words(value: str, defects: _Defects) -> str:
    """RFC 2047: decode every encoded-word (also one glued to other text, as clients do), drop the
    whitespace between adjacent ones, join adjacent words of one charset as bytes first (encoders
    split multi-byte characters across words). Never raises."""
    out: list[str] = []
    run: list[tuple[str, bytes]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[position:match.start()]
        if not run or between.strip(" \t"):
            _flush_words(run, out, defects)
            out.append(_unsurrogate(between))
        charset = match.group(1).split("*", 1)[0]  # RFC 2231 §5: charset*language
        data = _q_decode(match.group(3)) if match.group(2) in "qQ" else _b_decode(match.group(3), defects)
        run.append((charset, data))
        position = match.end()
    _flush_words(run, out, defects)
    out.append(_unsurrogate(value[position:]))
    return "".join(out)


def _flush_words(run: list[tuple[str, bytes]], out: list[str], defects: _Defects) -> None:
    index = 0
    while index < len(run):
        charset, chunks = run[index][0].lower(), []
        while index < len(run) and run[index][0].lower() == charset:
            chunks.append(run[index][1])
            index += 1
        out.append(_scrub(_decode_bytes(b"".join(chunks), charset, defects)))
    run.clear()


def _q_decode(text: str) -> bytes:
    data = _to_bytes(text.replace("_", " "))
    return _QP_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), data)


def _b_decode(text: str, defects: _Defects) -> bytes:
    data = text.encode("ascii", "ignore").rstrip(b"=")
    for candidate in (data, data[:-1]):  # one stray trailing character cannot be padded
        try:
            return binascii.a2b_base64(candidate + b"=" * (-len(candidate) % 4))
        except (binascii.Error, ValueError):
            continue
    defects.add("InvalidBase64CharactersDefect")
    return text.encode("ascii", "replace")


_LINE_BREAKS = re.compile(r"[\r\n\t\x0b\x0c\x85\u2028\u2029]")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"\s+")
_ESCAPED_BYTES = re.compile(r"[\udc80-\udcff]+")
_SURROGATES = re.compile(r"[\ud800-\udfff]")


def _one_line(text: str) -> str:
    """For headers and names: line breaks become spaces, C0/C1 controls go, whitespace folds."""
    return _SPACES.sub(" ", _CONTROLS.sub("", _LINE_BREAKS.sub(" ", text))).strip()


def _unsurrogate(text: str) -> str:
    """Raw 8-bit bytes reach us surrogate-escaped (the bytes parser decodes ASCII+surrogateescape):
    read each run as UTF-8, else cp1252; any other lone surrogate becomes U+FFFD."""
    if not _SURROGATES.search(text):
        return text
    text = _ESCAPED_BYTES.sub(lambda m: _decode_unknown(m.group().encode("utf-8", "surrogateescape")), text)
    return _scrub(text)


def _scrub(text: str) -> str:
    return _SURROGATES.sub("\ufffd", text)


def _to_bytes(text: str) -> bytes:
    """Back to the bytes a surrogate-escaped string came from."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate outside the escape range
        return _scrub(text).encode("utf-8")


# --------------------------------------------------------------------------------------------
# charsets

# Python codecs that are not mail charsets (or may not decode with errors="replace").
_UNSAFE_CODECS = frozenset({"idna", "punycode", "raw-unicode-escape", "unicode-escape", "undefined",
                            "mbcs", "oem"})
_UNKNOWN_CHARSETS = frozenset({"unknown-8bit", "x-unknown", "unknown", "x-user-defined", "default", "8bit"})
_CODEPAGE = re.compile(r"^(?:x-)?(?:windows|win|cp|ms|ibm)[-_ ]?(\d{3,5})$")


@functools.lru_cache(maxsize=512)
def _resolve_charset(name: str) -> tuple[str | None, bool]:
    """(Python codec name or None, whether the declared name needed mapping or a fallback)."""
    if not name or name in _UNKNOWN_CHARSETS:
        return None, bool(name)
    info = _lookup_codec(name)
    if info is not None:
        return (None, True) if info in _UNSAFE_CODECS else (info, False)
    candidates = [email.charset.ALIASES.get(name)]
    codepage = _CODEPAGE.match(name)
    if codepage:
        candidates.append("cp" + codepage.group(1))
    bare = name[2:] if name.startswith("x-") else name
    candidates += [bare, re.sub(r"-[ie]$", "", bare), bare.replace("-", "").replace("_", "")]
    for candidate in candidates:
        info = _lookup_codec(candidate) if candidate else None
        if info is not None and info not in _UNSAFE_CODECS:
            return info, True
    return None, True


def _lookup_codec(name: str) -> str | None:
    try:
        info = codecs.lookup(name)
    except Exception:  # LookupError; ValueError/TypeError for names with NUL and the like
        return None
    return info.name if getattr(info, "_is_text_encoding", True) else None


def _charset_note(name: str) -> str:
    return "charset-fallback:" + re.sub(r"[^a-z0-9._+:-]", "?", name)[:40]


def _decode_bytes(data: bytes, declared: str | None, defects: _Defects) -> str:
    """Decode with the declared charset where Python knows it (after alias normalisation),
    else UTF-8, else cp1252 — never raises; a name we had to map or drop is noted."""
    name = str(declared or "").strip().strip("\"'").lower()[:64]
    codec, noted = _resolve_charset(name)
    if noted:
        defects.add(_charset_note(name))
    if codec is not None and codec != "ascii":  # "us-ascii" with 8-bit bytes is the usual lie
        try:
            return data.decode(codec, "replace")
        except Exception:  # a codec that does not support "replace"
            defects.add(_charset_note(name))
    return _decode_unknown(data)


def _decode_unknown(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", "replace")


# --------------------------------------------------------------------------------------------
# ids, addresses, date

_BRACKETED_ID = re.compile(r"<([^<>]{1,998})>")
_NOT_IN_ID = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _clean_id(text: str) -> str | None:
    cleaned = _NOT_IN_ID.sub("", _scrub(text)).strip("<>")
    return cleaned[:998] or None


def _message_id(values: list[str], defects: _Defects) -> str | None:
    if not values:
        return None
    if len(values) > 1:
        defects.add("duplicate-header:Message-ID")
    value = _unsurrogate(values[0])
    match = _BRACKETED_ID.search(value)
    if match:
        return _clean_id(match.group(1))
    tokens = value.split()
    return _clean_id(tokens[0]) if tokens else None


def _id_list(values: list[str], name: str, defects: _Defects) -> tuple[str, ...]:
    ids: dict[str, None] = {}
    for value in values:
        value = _unsurrogate(value)
        found = _BRACKETED_ID.findall(value) or [token for token in value.split() if "@" in token]
        for candidate in found:
            cleaned = _clean_id(candidate)
            if cleaned:
                ids.setdefault(cleaned, None)
    result = list(ids)
    if len(result) > MAX_IDS:
        defects.add(f"ids-truncated:{name}")
        result = result[:1] + result[-(MAX_IDS - 1):]  # the thread's root and its most recent messages
    return tuple(result)


_LOCAL_PART = re.compile(r"^[^\s@<>()\[\]\\,;:\"\x00-\x1f\x7f-\x9f]{1,64}$")
_DOMAIN = re.compile(r"^(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)*[^\W_](?:[\w-]{0,61}[^\W_])?$")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_ADDRESS_SEPARATORS = re.compile(r'[\s<>()\[\],;:"]+')


def _valid_address(addr_spec: str) -> str | None:
    """The lowercased addr-spec when it is plainly local@domain, else None."""
    addr = _unsurrogate(addr_spec).strip()
    if addr.count("@") != 1 or len(addr) > 254:
        return None
    local, domain = addr.split("@")
    if not _LOCAL_PART.match(local) or not _DOMAIN.match(domain):
        return None
    return addr.lower()


def _address_tokens(value: str) -> set[str] | None:
    """Every address-like token outside quoted strings, lowercased; None for unbalanced quotes."""
    unquoted = _QUOTED.sub(" ", value)
    if '"' in unquoted:
        return None
    return {token.lower() for token in _ADDRESS_SEPARATORS.split(unquoted) if "@" in token and len(token) > 1}


_REJECTED_FROM_DEFECTS = (email.errors.InvalidHeaderDefect, email.errors.HeaderMissingRequiredValue)
# ...except these, about how the display name is encoded, never which address it is: QQ Mail writes
# `From: "=?gb18030?B?…?=" <a@b>` (an encoded-word inside quotes), and its users must be able to act
_NAME_ENCODING_DEFECTS = frozenset({"encoded word inside quoted string",
                                    "missing trailing whitespace after encoded-word",
                                    "missing whitespace before encoded word"})


def _rejects_from(defect: email.errors.MessageDefect) -> bool:
    return type(defect) in _REJECTED_FROM_DEFECTS and str(defect) not in _NAME_ENCODING_DEFECTS


# Fast paths for what nearly all mail carries (`Name <a@b>`, `a@b`, `=?utf-8?q?…?= <a@b>`): the
# stdlib's structured parser costs ~0.5 ms per address header; these regexes a few µs. Anything
# with quotes, comments, groups, dots or brackets in the name goes the careful way.
_SIMPLE_NAME = r"[^\x00-\x1f\x7f\"(),.:;<>@\[\]\\]*?"
_SIMPLE_ADDR = r"[^\s\x00-\x1f\x7f\"(),:;<>@\[\]\\]+@[^\s\x00-\x1f\x7f\"(),:;<>@\[\]\\]+"
_SIMPLE_ANGLE = re.compile(rf"^\s*({_SIMPLE_NAME})\s*<({_SIMPLE_ADDR})>\s*$")
_SIMPLE_BARE = re.compile(rf"^\s*({_SIMPLE_ADDR})\s*$")


def _simple_mailbox(value: str) -> tuple[str, str] | None:
    """(display name, addr-spec) of `Name <a@b>` or `a@b` in their plain forms, else None."""
    match = _SIMPLE_ANGLE.match(value)
    if match:
        name = match.group(1)
        if "=?" in name:
            name = _decode_words(name, _Defects())
        return _one_line(name)[:256], match.group(2)
    match = _SIMPLE_BARE.match(value)
    return ("", match.group(1)) if match else None


def _from(values: list[str], defects: _Defects) -> tuple[str | None, str]:
    """The single From mailbox, or None whenever there is any doubt about which address it is
    (CVE-2019-16056 / CVE-2023-27043 forms, several mailboxes or From headers, comments or
    unquoted text holding another address). The display name is data, never identity."""
    if not values:
        return None, ""
    if len(values) > 1:
        defects.add("duplicate-header:From")
    value = _unsurrogate(values[0])
    if len(value) > MAX_STRUCTURED_CHARS:
        defects.add("header-truncated:From")
        return None, ""
    simple = _simple_mailbox(value) if len(values) == 1 else None
    if simple is not None:  # the everyday form: no quotes, comments, groups or lists to doubt
        addr = _valid_address(simple[1])
        if addr is not None and _address_tokens(value) == {addr}:
            return addr, simple[0]
    try:
        parsed = _STDLIB_HEADERS.header_fetch_parse("From", value)
        addresses, groups, header_defects = parsed.addresses, parsed.groups, parsed.defects
        name = _one_line(_unsurrogate(addresses[0].display_name))[:256] if len(addresses) == 1 else ""
        addr_spec = addresses[0].addr_spec if len(addresses) == 1 else ""
    except Exception:
        defects.add("header-error:From")
        return None, ""
    defects.add_from(header_defects)
    if (len(values) > 1 or len(addresses) != 1 or groups[0].display_name is not None
            or any(_rejects_from(defect) for defect in header_defects)):
        return None, name
    addr = _valid_address(addr_spec)
    if addr is None:
        return None, name
    if _address_tokens(value) != {addr}:
        defects.add("from-ambiguous")
        return None, name
    return addr, name


def _simple_list(value: str) -> list[str] | None:
    """The addr-specs of a plain comma-separated list of simple mailboxes, else None."""
    if len(value) > MAX_STRUCTURED_CHARS or '"' in value or "(" in value or ":" in value:
        return None
    simple = [_simple_mailbox(item) for item in value.split(",") if item.strip()]
    if not simple or None in simple:
        return None
    return [mailbox[1] for mailbox in simple if mailbox is not None]


def _address_list(values: list[str], name: str, defects: _Defects, budget: _Budget) -> tuple[str, ...]:
    """Lowercased addr-specs of every To (or Cc) header; what cannot be read is dropped."""
    found: dict[str, None] = {}
    for value in values:
        value = _unsurrogate(value)
        specs = _simple_list(value)
        if specs is not None:
            pass  # the everyday form, read without the stdlib parser
        elif len(value) <= MAX_STRUCTURED_CHARS and budget.left >= len(value):
            budget.left -= len(value)
            try:
                parsed = _STDLIB_HEADERS.header_fetch_parse(name, value)
                specs = [address.addr_spec for address in parsed.addresses]
                defects.add_from(parsed.defects)
            except Exception:  # IndexError for `To: "`, RecursionError for nested comments …
                defects.add(f"header-error:{name}")
        else:
            defects.add(f"header-too-long:{name}")
        if specs is None:  # tolerant fallback: address-like tokens outside quoted strings
            specs = _ADDRESS_SEPARATORS.split(_QUOTED.sub(" ", value))
        for spec in specs:
            addr = _valid_address(spec)
            if addr:
                found.setdefault(addr, None)
    return tuple(found)


def date_of(values: list[str]) -> datetime | None:
    """A Date header's values as an aware UTC time, read as parse_message reads it; None if unreadable."""
    return _date(values, _Defects())


def _date(values: list[str], defects: _Defects) -> datetime | None:
    if not values:
        return None
    value = _unsurrogate(values[0]).strip()
    if len(value) > 256:
        defects.add("header-too-long:Date")
        return None
    # what the stdlib's DateHeader does, without its header object around it
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        defects.add("InvalidDateDefect")
        return None
    except Exception:
        defects.add("header-error:Date")
        return None
    if moment is None:
        return None
    if moment.tzinfo is None:  # "-0000" (RFC 5322: UTC, source zone unknown) or no zone at all
        defects.add("date-no-timezone")
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):  # year 9999 west of UTC
        defects.add("date-out-of-range")
        return None


# --------------------------------------------------------------------------------------------
# body and attachments


def _read_body(message: Message, defects: _Defects) -> tuple[str, str | None, tuple[Attachment, ...]]:
    """Walk the MIME tree (iteratively: 1,000 nested multiparts must not recurse), pick the
    text/plain and text/html bodies, record the rest as attachments. Embedded messages
    (message/rfc822, DSN parts) are attachments: what a person wrote is in the outer message."""
    plain_parts: list[Message] = []
    html_parts: list[Message] = []
    leftovers: list[Message] = []
    attachments: list[Attachment] = []
    stack = [message]
    visited = 0
    while stack:
        part = stack.pop()
        visited += 1
        if visited > MAX_PARTS:
            defects.add("part-limit")
            break
        defects.add_from(getattr(part, "defects", ()))
        content_type = _content_type(part)
        maintype = content_type.split("/", 1)[0]
        if part.is_multipart():
            children = [child for child in part.get_payload() if isinstance(child, Message)]
            if maintype == "message":
                filename = _filename(part, defects)[1]
                attachments.append(Attachment(filename, content_type, _approximate_size(children, defects)))
            else:
                stack.extend(reversed(children))
            continue
        disposition, filename = _filename(part, defects)
        is_attachment = disposition == "attachment" or filename is not None
        if not is_attachment and content_type == "text/plain":
            plain_parts.append(part)
        elif not is_attachment and content_type == "text/html":
            html_parts.append(part)
        elif not is_attachment and maintype == "multipart":
            leftovers.append(part)  # a multipart whose boundary is missing: its body is text
        else:
            data = _payload(part, defects)
            attachments.append(Attachment(filename, content_type, len(data), data))

    html = _part_text(html_parts[0], MAX_HTML_CHARS, "html-truncated", defects) if html_parts else None
    text = ""
    for part in plain_parts[:20]:
        text = _part_text(part, MAX_TEXT_CHARS, "text-truncated", defects)
        if text.strip():
            break
    if not text.strip() and html is not None:
        text = _clean_text(_html_to_text(html))
    if not text.strip() and leftovers:
        text = _part_text(leftovers[0], MAX_TEXT_CHARS, "text-truncated", defects)
    return text, html, tuple(attachments)


_MIME_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]{1,64}/[a-z0-9!#$&^_.+-]{1,127}$")


def _content_type(part: Message) -> str:
    try:
        content_type = str(part.get_content_type()).lower()
    except Exception:
        value = _raw_header(part, "content-type")
        content_type = value.split(";", 1)[0].strip().lower() if value else "text/plain"
    return content_type if _MIME_TYPE.match(content_type) else "application/octet-stream"


def _raw_header(part: Message, name: str) -> str | None:
    for key, value in _raw_items(part):
        if key.lower() == name:
            return _unfold(value)[:MAX_STRUCTURED_CHARS]
    return None


def _payload(part: Message, defects: _Defects) -> bytes:
    """The decoded (base64/quoted-printable/uuencode) payload; the raw one if decoding fails."""
    try:
        data = part.get_payload(decode=True)
    except Exception as error:
        defects.add(f"payload-error:{type(error).__name__}")
        try:
            data = part.get_payload()
        except Exception:
            data = b""
    if isinstance(data, str):
        return _to_bytes(data)
    return data if isinstance(data, bytes) else b""


def _part_text(part: Message, limit: int, note: str, defects: _Defects) -> str:
    data = _payload(part, defects)
    if len(data) > limit * 4:
        data = data[:limit * 4]
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = _parameter(_parameters(_raw_header(part, "content-type") or ""), "charset", defects)
    text = _decode_bytes(data, charset, defects)
    if len(text) > limit:
        defects.add(note)
        text = text[:limit]
    return _clean_text(text)


def _approximate_size(messages: list[Message], defects: _Defects) -> int:
    """Bytes of embedded messages: their header lines plus decoded leaf payloads. Counted, not
    re-serialised: the generator recurses and refolds headers, which can fail or be slow."""
    size, stack, visited = 0, list(messages), 0
    while stack and visited < MAX_PARTS:
        visited += 1
        current = stack.pop()
        size += sum(len(name) + len(value) + 4 for name, value in _raw_items(current)) + 2
        if current.is_multipart():
            stack.extend(child for child in current.get_payload() if isinstance(child, Message))
        else:
            size += len(_payload(current, defects))
    return size


_PARAMETER = re.compile(r';\s*([^\s=;"]{1,100})\s*(?:=\s*("(?:[^"\\]|\\.)*(?:"|$)|[^;]*))?', re.S)
_SECTION = re.compile(r"^(.+?)\*(\d{1,3})(\*?)$")
_UNSAFE_IN_FILENAME = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _parameters(value: str) -> dict[str, str]:
    """MIME parameters of a raw Content-Type/-Disposition value, tolerant of broken quoting.
    Our own parser: the stdlib's raises on `name*` and is quadratic on long lists."""
    params: dict[str, str] = {}
    for match in _PARAMETER.finditer(value[:MAX_STRUCTURED_CHARS]):
        if len(params) >= 64:
            break
        key, raw_value = match.group(1).lower(), match.group(2)
        if raw_value is None:
            continue
        raw_value = raw_value.strip()
        if raw_value.startswith('"'):
            raw_value = re.sub(r"\\(.)", r"\1", raw_value[1:-1] if raw_value.endswith('"') and len(raw_value) > 1
                               else raw_value[1:], flags=re.S)
        params.setdefault(key, raw_value)
    return params


def _parameter(params: dict[str, str], name: str, defects: _Defects) -> str | None:
    """One parameter, RFC 2231 (`name*`, `name*0*`, `name*1` …) before plain, RFC 2047 decoded."""
    if name + "*" in params:
        return _rfc2231_value([(params[name + "*"], True)], defects)
    sections = {}
    for key, value in params.items():
        match = _SECTION.match(key)
        if match and match.group(1) == name:
            sections[int(match.group(2))] = (value, bool(match.group(3)))
    if sections:
        if sorted(sections) != list(range(len(sections))):
            defects.add("rfc2231-missing-section")
        return _rfc2231_value([sections[number] for number in sorted(sections)], defects)
    if name in params:
        value = params[name]
        return _decode_words(value, defects) if "=?" in value else _unsurrogate(value)
    return None


def _rfc2231_value(sections: list[tuple[str, bool]], defects: _Defects) -> str:
    charset = "utf-8"
    chunks = []
    for index, (value, extended) in enumerate(sections):
        if extended:
            if index == 0 and value.count("'") >= 2:
                charset, _, value = value.split("'", 2)
            chunks.append(urllib.parse.unquote_to_bytes(value))
        else:
            chunks.append(_to_bytes(value))
    return _decode_bytes(b"".join(chunks), charset or "utf-8", defects)


def _filename(part: Message, defects: _Defects) -> tuple[str | None, str | None]:
    """(disposition type, sanitised filename) from the raw headers."""
    disposition_header = _raw_header(part, "content-disposition") or ""
    disposition = disposition_header.split(";", 1)[0].strip().lower() or None
    name = _parameter(_parameters(disposition_header), "filename", defects)
    if not name:
        name = _parameter(_parameters(_raw_header(part, "content-type") or ""), "name", defects)
    return disposition, _clean_filename(name)


def _clean_filename(name: str | None) -> str | None:
    if not name:
        return None
    name = _scrub(name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _SPACES.sub(" ", _UNSAFE_IN_FILENAME.sub("", name)).strip()
    if name in ("", ".", ".."):
        return None
    if len(name) > 255:
        stem, dot, extension = name.rpartition(".")
        extension = dot + extension if dot and 0 < len(extension) <= 16 else ""
        name = name[:255 - len(extension)] + extension
    return name


_BODY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _clean_text(text: str) -> str:
    """One newline convention; no NUL or other controls (tab and newline stay); no surrogates."""
    text = _scrub(text).replace("\r\n", "\n").replace("\r", "\n")
    text = text.replace("\x85", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    return _BODY_CONTROLS.sub("", text).lstrip("\ufeff")


# --------------------------------------------------------------------------------------------
# HTML → text

_TAG = re.compile(r"""<(/?)([a-zA-Z][a-zA-Z0-9:-]{0,40})((?:[^<>"']|"[^<>"]*"|'[^<>']*')*)>""")
_DECLARATION = re.compile(r"<[!?][^<>]*>")
_TAG_START = re.compile(r"</?[a-zA-Z]")
_BLOCK_TAGS = frozenset(
    "address article aside blockquote caption center dd div dl dt fieldset figcaption figure footer "
    "form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section table tbody tfoot thead tr ul".split())
_SKIPPED_TAGS = frozenset({"script", "style", "title", "template", "xml"})
_HTML_SPACE = re.compile(r"[ \t\r\n\f\v\xa0]+")


class _Lines:
    """Builds text lines from HTML; lines inside <blockquote> get one "> " per level."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.current: list[str] = []
        self.depth = 0
        self.line_depth = 0
        self.pre = 0

    def text(self, chunk: str) -> None:
        if not chunk:
            return
        if self.pre:
            first, *rest = chunk.replace("\r\n", "\n").split("\n")
            self._add(first)
            for piece in rest:
                self.newline()
                self._add(piece)
        else:
            self._add(_HTML_SPACE.sub(" ", chunk))

    def _add(self, chunk: str) -> None:
        if not self.current:
            self.line_depth = self.depth
        self.current.append(chunk)

    def newline(self) -> None:
        line = re.sub(r" {2,}", " ", "".join(self.current)).strip() if not self.pre else "".join(self.current)
        depth = self.line_depth if self.current else self.depth
        self.lines.append("> " * depth + line)
        self.current = []

    def block(self) -> None:
        if "".join(self.current).strip():
            self.newline()
        else:
            self.current = []

    def result(self) -> str:
        self.block()
        return re.sub(r"\n(?:[ \t>]*\n){2,}", "\n\n", "\n".join(self.lines)).strip()


def html_to_text(markup: str) -> str:
    """Readable text from an HTML part, as the body of a mail without a text part is read."""
    return _clean_text(_html_to_text(markup))


def _html_to_text(markup: str) -> str:
    """Readable text from HTML: tags stripped, block elements and <br> → newlines, blockquotes
    → "> " lines, entities unescaped, script/style/title dropped. Linear in the input (no
    html.parser: it is quadratic on some malformed input before 3.13.4, CVE-2025-6069)."""
    out = _Lines()
    position, length = 0, len(markup)
    while position < length:
        lt = markup.find("<", position)
        if lt < 0:
            out.text(html_lib.unescape(markup[position:]))
            break
        out.text(html_lib.unescape(markup[position:lt]))
        if markup.startswith("<!--", lt):
            end = markup.find("-->", lt + 4)
            position = length if end < 0 else end + 3
            continue
        tag = _TAG.match(markup, lt)
        if tag is None:
            declaration = _DECLARATION.match(markup, lt)
            gt = markup.find(">", lt + 1, lt + 2048)
            if declaration:
                position = declaration.end()
            elif _TAG_START.match(markup, lt) and gt > 0 and markup.find("<", lt + 1, gt) < 0:
                position = gt + 1  # a tag with an unbalanced quote in it: drop it like a browser would
            else:
                out.text("<")
                position = lt + 1
            continue
        position = tag.end()
        closing, name = tag.group(1) == "/", tag.group(2).lower()
        if name in _SKIPPED_TAGS:
            if not closing and not tag.group(3).rstrip().endswith("/"):
                closer = re.compile(r"</%s\s*>" % re.escape(name), re.I).search(markup, position)
                position = length if closer is None else closer.end()
        elif name == "br":
            out.newline()
        elif name == "blockquote":
            out.block()
            out.depth = max(0, out.depth + (-1 if closing else 1))
        elif name == "pre":
            out.block()
            out.pre = max(0, out.pre + (-1 if closing else 1))
        elif name in _BLOCK_TAGS:
            out.block()
            if name == "li" and not closing:
                out.text("- ")
        elif name in ("td", "th") and not closing:
            out.text(" ")
    return out.result()


# --------------------------------------------------------------------------------------------
# quoted history

_QUOTE = re.compile(r"^\s*>")
_ATTRIBUTION_VERB = (r"(?:wrote|writes|schrieb|a écrit|escribió|escreveu|scrisse|ha scritto|schreef|skrev|"
                     r"kirjoitti|napisał(?:\(a\))?|napsal(?:\(a\))?|написал(?:\(а\)|а)?|yazdı)")
_ATTRIBUTION_END = re.compile(_ATTRIBUTION_VERB + r"\s*:\s*$", re.I)      # "… Alice <a@b> wrote:"
_ATTRIBUTION_INNER = re.compile(r"\b" + _ATTRIBUTION_VERB + r"\b.*:\s*$", re.I)  # "Am … schrieb Alice <a@b>:"
_ATTRIBUTION_START = re.compile(r"^\s*(?:On|Am|Le|El|Em|Il|Op|Den|Dne|W dniu)\s", re.I)
_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Originalnachricht|Message d'origine|"
    r"Mensaje original|Messaggio originale|Oorspronkelijk bericht|Forwarded message|"
    r"Weitergeleitete Nachricht|Исходное сообщение|Wiadomość oryginalna|Původní zpráva|Özgün ileti|"
    r"Alkuperäinen viesti|元のメッセージ|原始邮件)\s*-{2,}\s*$|^\s*Begin forwarded message:\s*$", re.I)


def _label_line(labels: str, after: str = "") -> re.Pattern[str]:
    """A line that opens with one of the `|`-separated labels, bold or not (`*From:*`), then a colon
    (the full-width one too), then `after`."""
    return re.compile(rf"^\s*\*?\s*(?:{labels})\s*[:：]{after}", re.I)


# the header block Outlook, QQ Mail and others put above a quote, in the languages seen in replies
_HEADER_FROM = _label_line("From|Von|De|Van|Da|Från|Fra|Od|От|Kimden|Lähettäjä|差出人|发件人|寄件者", after=r"\s*\*?\s*\S")
_HEADER_OTHER = _label_line(
    "Sent|Date|Gesendet|Datum|Envoyé|Enviado|Inviato|Verzonden|Skickat|Sendt|To|An|À|Para|A|"
    "Aan|Till|Til|Cc|Subject|Betreff|Objet|Asunto|Oggetto|Onderwerp|Ämne|Emne|"
    "Отправлено|Дата|Кому|Копия|Тема|Wysłano|Do|DW|Temat|Odesláno|Komu|Kopie|Předmět|Gönderildi|Tarih|Kime|"
    "Bilgi|Konu|Lähetetty|Vastaanottaja|Kopio|Aihe|送信日時|宛先|件名|发送时间|收件人|抄送|主题|日期")
_SEPARATOR = re.compile(r"^\s*(?:_{5,}|-{5,})\s*$")
_MOBILE_FOOTER = re.compile(
    r"^\s*(?:Sent from my \S+|Sent from (?:Outlook|Mail|Yahoo Mail|Gmail|Samsung|Proton Mail)\b|"
    r"Get Outlook for \S+|Von meinem \S+ gesendet|Gesendet von meinem \S+|Envoyé de mon \S+|"
    r"Enviado desde mi \S+)", re.I)


def _history_start(lines: list[str]) -> int:
    """Index of the first line that belongs to quoted history or the signature."""
    for index, line in enumerate(lines):
        if _QUOTE.match(line) or _ORIGINAL_MESSAGE.match(line) or _MOBILE_FOOTER.match(line):
            return _back_over_separator(lines, index)
        if line.rstrip() == "--":  # the signature separator "-- " (often stripped to "--")
            return index
        if len(line) > 1000:
            continue
        if line.rstrip().endswith(":"):
            start = _attribution_start(lines, index)
            if start is not None:
                return start
        if _HEADER_FROM.match(line) and _is_header_block(lines, index):
            return _back_over_separator(lines, index)
    return len(lines)


def _attribution_start(lines: list[str], index: int) -> int | None:
    """Where an attribution ending at line `index` begins ("On <date>, <name> wrote:", "Am <date>
    schrieb <name>:"; clients wrap it over up to 3 lines), or None when it is not one: "As I
    wrote:" or "In 2024 I wrote the following:" are text."""
    start = index
    for back in (1, 2):
        if _ATTRIBUTION_START.match(lines[start]) or index - back < 0 or not lines[index - back].strip():
            break
        if _ATTRIBUTION_START.match(lines[index - back]) and len(" ".join(lines[index - back:index + 1])) <= 400:
            start = index - back
    joined = " ".join(line.strip() for line in lines[start:index + 1])
    following = next((line for line in lines[index + 1:index + 4] if line.strip()), "")
    evidence = bool(re.search(r"[\d@]", joined)) or bool(_QUOTE.match(following))
    if _ATTRIBUTION_END.search(joined) and (evidence or _ATTRIBUTION_START.match(joined)):
        return start
    if _ATTRIBUTION_START.match(joined) and _ATTRIBUTION_INNER.search(joined) and evidence:
        return start
    return None


def _is_header_block(lines: list[str], index: int) -> bool:
    following = [line for line in lines[index + 1:index + 8] if line.strip()][:5]
    return sum(1 for line in following if _HEADER_OTHER.match(line)) >= 2


def _back_over_separator(lines: list[str], index: int) -> int:
    previous = index - 1
    while previous >= 0 and not lines[previous].strip():
        previous -= 1
    return previous if previous >= 0 and _SEPARATOR.match(lines[previous]) else index
