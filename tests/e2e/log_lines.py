"""Readers for what escalate logs, written from the formats' rules (not from escalate's code): a
strict logfmt parser, and journald's native datagram protocol."""

from __future__ import annotations

import json
import re
import struct

_PAIR = re.compile(r'([A-Za-z0-9_.\-]+)=("(?:[^"\\]|\\.)*"|[^\s"=\\]+)')
_UNESCAPE = re.compile(r'\\(u[0-9a-f]{4}|U[0-9a-f]{8}|.)')
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def parse_logfmt(line: str) -> dict[str, str]:
    """One line of logfmt: `key=value` pairs, one space apart, a value bare or double-quoted with
    backslash escapes (\\n \\r \\t \\" \\\\ \\uXXXX \\UXXXXXXXX). Anything else (a stray word, a
    second space, an unquoted `=`, an unknown escape, a key given twice) fails the test."""
    assert line.isprintable(), f"unprintable characters in a log line: {line!r}"
    fields: dict[str, str] = {}
    position = 0
    while position < len(line):
        match = _PAIR.match(line, position)
        assert match, f"not logfmt at column {position}: {line!r}"
        key, raw = match.groups()
        assert key not in fields, f"{key} twice in {line!r}"
        fields[key] = _unescape(raw[1:-1]) if raw.startswith('"') else raw
        position = match.end()
        if position < len(line):
            assert line[position] == " ", f"expected one space at column {position}: {line!r}"
            position += 1
            assert position < len(line), f"trailing space: {line!r}"
    return fields


def _unescape(text: str) -> str:
    def one(match: re.Match) -> str:
        escape = match.group(1)
        if escape[0] in "uU" and len(escape) > 1:
            return chr(int(escape[1:], 16))
        assert escape in _SIMPLE, f"unknown escape \\{escape}"
        return _SIMPLE[escape]
    return _UNESCAPE.sub(one, text)


def parse_lines(stderr: str, log_format: str) -> list[dict]:
    """Every line of a process's stderr as a record: the whole of it must be log lines."""
    lines = stderr.splitlines()
    assert lines, "nothing was logged"
    if log_format == "json":
        return [json.loads(line) for line in lines]
    return [parse_logfmt(line) for line in lines]


def events(records: list[dict], name: str) -> list[dict]:
    return [record for record in records if record.get("msg") == name]


def parse_journal_datagram(data: bytes) -> dict[str, str]:
    """journald's native protocol: `KEY=value\\n`, or `KEY\\n` + 64-bit little-endian length +
    value + `\\n` for a value that holds a newline."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(data):
        end = data.index(b"\n", position)
        head = data[position:end]
        if b"=" in head:
            key, _, value = head.partition(b"=")
            position = end + 1
        else:
            key = head
            (length,) = struct.unpack("<Q", data[end + 1:end + 9])
            value = data[end + 9:end + 9 + length]
            assert data[end + 9 + length:end + 10 + length] == b"\n", "a binary field must end with a newline"
            position = end + 10 + length
        name = key.decode("ascii")
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not a journal field name: {name!r}"
        assert name not in fields, f"{name} twice"
        fields[name] = value.decode("utf-8")
    return fields
