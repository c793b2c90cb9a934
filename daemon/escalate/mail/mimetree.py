"""The MIME tree of a mail as `email.message_from_bytes(raw, policy=compat32)` builds it, faster.

feedparser reads a mail line by line, and a 150 KB base64 attachment is 2,000 lines: that is
most of the cost of parsing support mail (~1.2 ms of ~1.4 ms a mail, bench/ingest_bench.py).
`split_mime` finds the boundary lines with bytes.find and cuts the body there; header fields are
split as feedparser splits them (and stored by the policy's own header_source_parse), and payloads, preamble and epilogue are the strings
feedparser would keep (tests/unit/test_parse.py compares whole trees on the hard mail fixtures,
their mutants and generated mail). Anything out of the ordinary — a bare CR, a
header block that does not end in an empty line, a missing start or close boundary, boundary
lines in a row, message/* parts, multipart/digest, a header defect — returns None, and the
caller uses feedparser, whose defect notes and repairs are not reproduced here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from email.message import Message
from email.policy import Policy

_HEADER_LINE = re.compile(rb"(From |[\041-\071\073-\176]*:|[\t ])")  # email.feedparser.headerRE, for bytes
_BOUNDARY_END = re.compile(rb"(--)?[ \t]*(\r\n|\n)?$")
MAX_FAST_DEPTH = 8
MAX_FAST_PARTS = 200


class _Slow(Exception):
    """The mail needs feedparser's full treatment (a defect, an odd structure)."""


def split_mime(raw: bytes, policy: Policy) -> Message | None:
    """The compat32 MIME tree of ordinary mail, built by splitting the bytes at its boundary lines
    with bytes.find instead of feeding every line through feedparser: header fields split as
    feedparser splits them, payloads byte-for-byte the strings feedparser would keep. None for anything out
    of the ordinary (a bare CR, a missing boundary, a part without a header/body separator,
    message/* parts, multipart/digest, …): the caller then uses the stdlib parser, whose
    defects and repairs we do not reproduce."""
    if raw.count(b"\r") != raw.count(b"\r\n"):
        return None
    try:
        return _block(raw, policy, 0, [0])
    except _Slow:
        return None


def _block(data: bytes, policy: Policy, depth: int, parts: list[int]) -> Message:
    parts[0] += 1
    if depth > MAX_FAST_DEPTH or parts[0] > MAX_FAST_PARTS:
        raise _Slow()
    body_start = _header_end(data)
    message = _headers(data[:body_start], policy)
    maintype = message.get_content_maintype()
    if maintype == "message":
        raise _Slow()
    if maintype != "multipart":
        message._payload = data[body_start:].decode("ascii", "surrogateescape")  # type: ignore[attr-defined]
        return message
    boundary = message.get_boundary()
    if (not boundary or message.get_content_subtype() == "digest"
            or str(message.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary")):
        raise _Slow()
    try:
        separator = ("--" + boundary).encode("ascii")
    except UnicodeEncodeError:
        raise _Slow() from None
    _multipart(message, data, body_start, separator, policy, depth, parts)
    return message


def _header_end(data: bytes) -> int:
    """Where the body starts: after the first empty line, when every line before it looks like
    a header (feedparser's rule); anything else is a defect we leave to feedparser."""
    position = 0
    while True:
        end = data.find(b"\n", position)
        if end < 0:
            raise _Slow()  # headers up to the end: no body
        if end == position or (end == position + 1 and data[position] == 13):
            if position == 0:
                raise _Slow()  # no headers at all
            return end + 1
        if not _HEADER_LINE.match(data, position):
            raise _Slow()
        position = end + 1


def _headers(block: bytes, policy: Policy) -> Message:
    """The header block (its lines all header-like, see _header_end; the empty line last) as
    feedparser's `_parse_headers` stores it — `policy.header_source_parse` of each field's lines,
    in order — without a parser object and its line loop per part (~40% of split_mime). What
    feedparser would note as a defect (a continuation first, a `From ` line, an empty name) is
    left to it."""
    message = Message(policy=policy)
    lines = block.decode("ascii", "surrogateescape").split("\n")
    del lines[-2:]  # the empty line that ends the block, and the nothing after its line break
    field: list[str] = []
    for line in lines:
        line += "\n"  # back on, as feedparser keeps it (a CR before it is still there: no bare CRs)
        if line[0] in " \t":
            if not field:
                raise _Slow()
            field.append(line)
            continue
        if field:
            message.set_raw(*policy.header_source_parse(field))
        if line.startswith("From ") or line.find(":") <= 0:
            raise _Slow()
        field = [line]
    if field:
        message.set_raw(*policy.header_source_parse(field))
    return message


def _boundary_lines(data: bytes, start: int, separator: bytes) -> Iterator[tuple[int, int, bool]]:
    """(line start, line end, is close) of each boundary line of `separator` from `start`."""
    position = start
    while True:
        if position == start and data.startswith(separator, start):
            found = start
        else:
            found = data.find(b"\n" + separator, position)
            if found < 0:
                return
            found += 1
        line_end = data.find(b"\n", found)
        line_end = len(data) if line_end < 0 else line_end + 1
        match = _BOUNDARY_END.match(data, found + len(separator), line_end)
        if match and match.end() == line_end:
            yield found, line_end, match.group(1) is not None
        position = line_end if line_end > found else found + 1
        if position >= len(data):
            return


def _multipart(message: Message, data: bytes, body_start: int, separator: bytes, policy: Policy, depth: int,
               parts: list[int]) -> None:
    lines = _boundary_lines(data, body_start, separator)
    first = next(lines, None)
    if first is None or first[2]:
        raise _Slow()  # no start boundary, or it is the close one
    if first[0] > body_start:
        preamble = data[body_start:first[0]].decode("ascii", "surrogateescape")
        message.preamble = _strip_eol(preamble)
    children = []
    part_start = first[1]
    for line_start, line_end, close in lines:
        if line_start == part_start:
            raise _Slow()  # two boundary lines in a row: feedparser merges them
        child = _block(data[part_start:line_start], policy, depth + 1, parts)
        if child.get_content_maintype() == "multipart":
            epilogue = child.epilogue
            if epilogue == "":
                child.epilogue = None
            elif epilogue is not None:
                child.epilogue = _strip_eol(epilogue)
        else:
            child._payload = _strip_eol(child._payload)  # type: ignore[attr-defined]
        children.append(child)
        part_start = line_end
        if close:
            # feedparser keeps everything after the close line as the epilogue, as it is
            message.epilogue = data[line_end:].decode("ascii", "surrogateescape")
            message._payload = children  # type: ignore[attr-defined]
            return
    raise _Slow()  # no close boundary


def _strip_eol(text: str) -> str:
    """Without its last line break (it belongs to the boundary that follows, RFC 2046)."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text
