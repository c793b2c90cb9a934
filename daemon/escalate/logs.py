"""Logging for journald and people: one line per event on stderr, key=value (logfmt), with the
syslog priority prefix journald understands when running under systemd, and every known secret
value replaced by *** before a line is written."""

from __future__ import annotations

import logging
import os
import sys
from typing import Iterable

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class LogfmtFormatter(logging.Formatter):
    def __init__(self, journald: bool):
        super().__init__()
        self.journald = journald

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        # msg comes last and unquoted, so a person reads it as written and a parser splits on
        # the first " msg="; continuation lines are indented under it
        message = message.replace("\n", "\n    ")
        line = f"level={record.levelname.lower()} logger={record.name} msg={message}"
        if not self.journald:
            line = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {line}"
        else:
            line = f"<{_PRIORITY.get(record.levelno, 6)}>{line}"
        return line


class RedactSecrets(logging.Filter):
    """Replace secret values in the rendered message (and its arguments) with ***."""

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
        for secret in self.secrets:
            message = message.replace(secret, "***")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(secret, "***")
        record.msg, record.args = message, None
        return True


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


def setup(verbosity: int) -> None:
    """Configure the root logger once: WARNING by default, -v INFO, -vv DEBUG."""
    level = max(logging.WARNING - 10 * verbosity, logging.DEBUG)
    root = logging.getLogger()
    root.setLevel(level)
    peewee_log = logging.getLogger("peewee")
    if _statements not in peewee_log.filters:
        peewee_log.addFilter(_statements)  # on the logger: before any handler sees the record
    if any(getattr(h, "_escalate", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler._escalate = True  # type: ignore[attr-defined]
    handler.setFormatter(LogfmtFormatter(journald=bool(os.environ.get("JOURNAL_STREAM"))))
    handler.addFilter(redactor)
    root.addHandler(handler)
