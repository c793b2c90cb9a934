"""Logging for journald, log shippers and people: one line per event, with fields.

An event is logged with `event(log, "escalated", ticket="T-4", tier=2, …)`: its name is the
message, the rest are fields. Other records keep their prose as the message. A line is logfmt by
default (`time=… level=info logger=escalate.engine.tick msg=escalated ticket=T-4 tier=2`) or one JSON
object with ESCALATE_LOG_FORMAT=json. Under systemd (journald reads our stderr: JOURNAL_STREAM)
each record goes to the journal over its native protocol instead, so the fields are the journal's
own (`journalctl -u escalate TICKET=T-4`), and to stderr when the journal's socket cannot take it.

Customer text (a subject, an address, an error a server quoted) never breaks a line: a value with
a space, a quote, `=` or anything unprintable is quoted and escaped, so a subject holding
"\\nlevel=error" stays inside its one line. Every known secret value is replaced by *** before a
line is written.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import re
import socket
import struct
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

from escalate.config import read_env_file

FORMATS = ("logfmt", "json")
JOURNAL_SOCKET = "/run/systemd/journal/socket"
SEND_TIMEOUT_SECONDS = 1.0
_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_FIELDS = "escalate_fields"  # the LogRecord attribute `event` puts the fields in
_ORIGIN = "escalate_origin"  # and (file, line, function) of its caller
_BASE_KEYS = ("time", "level", "logger", "msg")


class LogFormatError(ValueError):
    """ESCALATE_LOG_FORMAT names no format escalate writes."""


def event(logger: logging.Logger, name: str, /, *, level: int = logging.INFO, held: HeldEvents | None = None,
          **fields: Any) -> None:
    """Log the event `name` with `fields`. A field may be a function, called when the line is
    written (an id the commit gives); fields that are None are left out. Given `held` (a batch's,
    from `held()`), the event waits for that block to end."""
    if not logger.isEnabledFor(level):
        return
    caller = sys._getframe(1)  # where the event was logged, for journald's CODE_* fields, held or not
    origin = (caller.f_code.co_filename, caller.f_lineno, caller.f_code.co_name)
    if held is not None:
        held.events.append((logger, level, name, fields, origin))
    else:
        _emit(logger, level, name, fields, origin)


def _emit(logger: logging.Logger, level: int, name: str, fields: dict[str, Any], origin: tuple[str, int, str]) -> None:
    values = {key: value() if callable(value) else value for key, value in fields.items()}
    logger.log(level, "%s", name, extra={_FIELDS: {k: v for k, v in values.items() if v is not None},
                                         _ORIGIN: origin})


class HeldEvents:
    """The events of one transaction, logged once it committed: a line never reports a ticket
    escalated whose batch was rolled back. A unit undone drops its own (batch.Batch takes it,
    with `mark` and `rollback`, like the batch's deferred mail and audit events)."""

    def __init__(self) -> None:
        self.events: list[tuple[logging.Logger, int, str, dict[str, Any], tuple[str, int, str]]] = []

    def mark(self) -> int:
        return len(self.events)

    def rollback(self, mark: int) -> None:
        del self.events[mark:]


@contextlib.contextmanager
def held() -> Iterator[HeldEvents]:
    """Events logged with `held=` this block's HeldEvents wait: they are logged when it ends without
    an error (enter it before the transaction, so it ends after the commit) and dropped when it
    raises. The batch the block's transaction writes carries them (store/batch.py), so a unit
    undone drops its own."""
    waiting = HeldEvents()
    yield waiting
    for logger, level, name, fields, origin in waiting.events:
        _emit(logger, level, name, fields, origin)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    return getattr(record, _FIELDS, None) or {}


# ---------------------------------------------------------------------------------------------
# logfmt

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_BARE = re.compile(r'[^\s"=\\]+')  # a value written as it is (if printable too)


def logfmt_value(value: Any) -> str:
    """A value as logfmt writes it: bare when it is plain printable text without space, quote or
    `=`; otherwise quoted, with backslash, quote, newline and every unprintable character escaped."""
    text = value if type(value) is str else _text(value)
    if _BARE.fullmatch(text) and text.isprintable():
        return text
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char == " " or char.isprintable():
            out.append(char)
        else:  # a terminal escape, U+2028 and the like: a viewer must not act on them either
            out.append(f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(_text(v) for v in value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


@functools.lru_cache(maxsize=512)
def _key(name: str) -> str:
    """A field name that cannot pass for another field: only letters, digits, _ - . stay."""
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name) or "_"


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    if record.exc_info and not record.exc_text:
        record.exc_text = formatter.formatException(record.exc_info)
    return record.exc_text or None


def _fields_with_base(record: logging.LogRecord, exc: str | None, with_time: bool) -> list[tuple[str, Any]]:
    base: list[tuple[str, Any]] = [("time", _timestamp(record))] if with_time else []
    base += [("level", record.levelname.lower()), ("logger", record.name), ("msg", record.getMessage())]
    for key, value in fields_of(record).items():
        key = _key(key)
        base.append((f"field_{key}" if key in _BASE_KEYS or key == "exc" else key, value))
    if exc:
        base.append(("exc", exc))
    return base


class LogfmtFormatter(logging.Formatter):
    """`time=… level=… logger=… msg=… key=value…`; without the time when something else stamps it
    (journald)."""

    def __init__(self, with_time: bool = True):
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        pairs = _fields_with_base(record, _exception_text(self, record), self.with_time)
        return " ".join(f"{key}={logfmt_value(value)}" for key, value in pairs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, msg, then the event's fields (numbers stay
    numbers), and exc with the traceback."""

    def __init__(self, with_time: bool = True):
        super().__init__()
        self.with_time = with_time

    def format(self, record: logging.LogRecord) -> str:
        pairs = _fields_with_base(record, _exception_text(self, record), self.with_time)
        line = json.dumps({key: _json_value(value) for key, value in pairs}, ensure_ascii=False)
        if line.isprintable():
            return line
        # json escapes only the ASCII controls: U+2028, NEL and the like end a line for many readers
        return "".join(c if c.isprintable() else _json_escape(c) for c in line)


def _json_escape(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond the BMP: JSON's surrogate pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_value(v) for v in value]
    return _text(value)


def formatter_for(log_format: str, *, with_time: bool = True) -> logging.Formatter:
    return JsonFormatter(with_time) if log_format == "json" else LogfmtFormatter(with_time)


# ---------------------------------------------------------------------------------------------
# journald


def journal_field_name(name: str) -> str:
    """journald's field names: upper-case letters, digits and _, not starting with a digit or _."""
    cleaned = "".join(c if c.isascii() and c.isalnum() else "_" for c in name.upper()).lstrip("_")
    if not cleaned or cleaned[0].isdigit():
        cleaned = "F_" + cleaned
    return cleaned[:64]


def journal_datagram(fields: Iterable[tuple[str, str]]) -> bytes:
    """The journal's native protocol: `KEY=value\\n`, or for a value holding a newline
    `KEY\\n`, its length as 64-bit little-endian, the value, `\\n`."""
    out = bytearray()
    for key, value in fields:
        data = str(value).encode("utf-8", "backslashreplace")
        if b"\n" in data:
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


# set by us for every record: an event's field of the same name is sent as ESCALATE_<NAME>
_JOURNAL_OWN = {"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "LOGGER", "EVENT", "TRACEBACK", "CODE_FILE",
                "CODE_LINE", "CODE_FUNC", "THREAD_NAME", "SYSLOG_PID", "MESSAGE_ID"}


class JournalHandler(logging.Handler):
    """Sends each record to journald as a datagram of fields: MESSAGE (the formatted line),
    PRIORITY, SYSLOG_IDENTIFIER=escalate, LOGGER, CODE_FILE/LINE/FUNC, EVENT (an event's name),
    TRACEBACK, and each of the event's fields upper-cased (ticket → TICKET). Written by hand (a
    few lines, like sdnotify.py) rather than with python-systemd, which needs libsystemd and a
    compiler where no wheel exists. A record the socket refuses (journald gone, its queue full for
    a second, too large for one datagram) is written to `fallback` instead: never lost."""

    def __init__(self, path: str, fallback: logging.Handler):
        super().__init__()
        self.path = path
        self.fallback = fallback
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        # a burst may fill journald's queue for a moment (it holds a few datagrams); a journald that
        # stopped reading must not stall a stage for longer than this per line
        self._socket.settimeout(SEND_TIMEOUT_SECONDS)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            datagram = journal_datagram(self.journal_fields(record))
        except Exception:
            self.handleError(record)
            return
        try:
            self._socket.sendto(datagram, self.path)
        except OSError:
            self.fallback.handle(record)

    def journal_fields(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        message = self.format(record)  # also renders record.exc_text
        path, line, function = getattr(record, _ORIGIN, None) or (record.pathname, record.lineno, record.funcName)
        pairs = [("MESSAGE", message), ("PRIORITY", str(_PRIORITY.get(record.levelno, 6))),
                 ("SYSLOG_IDENTIFIER", "escalate"), ("SYSLOG_PID", str(os.getpid())), ("LOGGER", record.name),
                 ("CODE_FILE", path or ""), ("CODE_LINE", str(line)), ("CODE_FUNC", function or ""),
                 ("THREAD_NAME", record.threadName or "")]
        fields = fields_of(record)
        if fields:
            pairs.append(("EVENT", record.getMessage()))
        for key, value in fields.items():
            name = journal_field_name(key)
            pairs.append((f"ESCALATE_{name}" if name in _JOURNAL_OWN else name, _text(value)))
        if record.exc_text:
            pairs.append(("TRACEBACK", record.exc_text))
        return pairs

    def close(self) -> None:
        self._socket.close()
        super().close()


def journal_reads_stderr(environ: dict[str, str] | os._Environ = os.environ) -> bool:
    """Whether our stderr is journald's stream: JOURNAL_STREAM names its device and inode (a
    child whose stderr was redirected inherits the variable but not the stream)."""
    device, _, inode = (environ.get("JOURNAL_STREAM") or "").partition(":")
    try:
        status = os.fstat(2)
        return (status.st_dev, status.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False


# ---------------------------------------------------------------------------------------------
# filters


class RedactSecrets(logging.Filter):
    """Replace secret values in the rendered message, its fields and traceback with ***."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, values: Iterable[str | None]) -> None:
        self.secrets.update(v for v in values if v and len(v) >= 3)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        fields = fields_of(record)
        for secret in self.secrets:
            message = message.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
        record.msg, record.args = message, None
        if fields:
            setattr(record, _FIELDS, {key: self._redact(value) for key, value in fields.items()})
        return True

    def _redact(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, "***")
            return value
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self._redact(v) for v in value]
        return value


redactor = RedactSecrets()


class StatementsWithoutParameters(logging.Filter):
    """peewee logs every statement at DEBUG as (sql, parameters), and the parameters are the mail:
    bodies, subjects, addresses, reply tokens. Keep the SQL (values are never in it: peewee and
    our own statements always pass them as parameters) and drop the parameters."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, tuple) and len(record.msg) == 2 and isinstance(record.msg[0], str):
            count = len(record.msg[1]) if isinstance(record.msg[1], (list, tuple)) else 0
            record.msg, record.args = f"{record.msg[0]} -- {count} parameters, not logged", None
        return True


_statements = StatementsWithoutParameters()


# ---------------------------------------------------------------------------------------------
# setup


class ProcessStderrHandler(logging.StreamHandler):
    """Writes to the process's own stderr (what journald or the terminal reads), looked up at each
    line: not to a stand-in a caller put in sys.stderr to capture a command's output (click's test
    runner), where log lines would end up inside the JSON a script parses."""

    def __init__(self) -> None:
        super().__init__(sys.__stderr__ or sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.__stderr__ or sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _PriorityPrefix(logging.Formatter):
    """`<6>line`: the syslog priority journald reads at the start of a line on its stream."""

    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return f"<{_PRIORITY.get(record.levelno, 6)}>{self.inner.format(record)}"


def log_format(environ: dict[str, str] | os._Environ = os.environ) -> str:
    text = (environ.get("ESCALATE_LOG_FORMAT") or "logfmt").strip().lower()
    if text not in FORMATS:
        raise LogFormatError(f"ESCALATE_LOG_FORMAT: expected logfmt or json, got {text!r}")
    return text


def build_handler(log_format_name: str, *, environ: dict[str, str] | os._Environ = os.environ,
                  journal_socket: str | None = None) -> logging.Handler:
    """The handler for this process: journald's socket when journald reads our stderr and its
    socket is there, else stderr (with the priority prefix when journald reads it)."""
    under_journald = journal_reads_stderr(environ)
    stderr = ProcessStderrHandler()
    line = formatter_for(log_format_name, with_time=not under_journald)
    stderr.setFormatter(_PriorityPrefix(line) if under_journald else line)
    path = journal_socket or JOURNAL_SOCKET
    if under_journald and os.path.exists(path):
        handler: logging.Handler = JournalHandler(path, fallback=stderr)
        handler.setFormatter(line)
        return handler
    return stderr


def setup(verbosity: int, *, daemon: bool = False, env_file: Path | None = None) -> None:
    """Configure the root logger: WARNING by default, INFO for the daemon (`escalate run`: what it
    does is worth reading), each -v one level more, down to DEBUG. ESCALATE_LOG_FORMAT comes from
    the environment, else from the env file (a broken file is reported when the settings are read).
    Called once per command; a later call (the tests run many commands in one process) replaces
    the handler."""
    environ: dict[str, str] = {}
    if env_file is not None:
        try:
            environ.update(read_env_file(env_file))
        except (OSError, ValueError):
            pass
    environ.update(os.environ)
    chosen = log_format(environ)
    base = logging.INFO if daemon else logging.WARNING
    root = logging.getLogger()
    root.setLevel(max(base - 10 * verbosity, logging.DEBUG))
    peewee_log = logging.getLogger("peewee")
    if _statements not in peewee_log.filters:
        peewee_log.addFilter(_statements)  # on the logger: before any handler sees the record
    for old in [h for h in root.handlers if getattr(h, "_escalate", False)]:
        root.removeHandler(old)
        old.close()
    handler = build_handler(chosen, environ=environ)
    handler._escalate = True  # type: ignore[attr-defined]
    handler.addFilter(redactor)
    root.addHandler(handler)
