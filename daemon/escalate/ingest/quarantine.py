"""The quarantine from the admin's side: look at a held mail, and process it again after a fix.

Ingest puts a mail here when it cannot be handled (unparseable, too large, a failure while
storing it), with its raw bytes and the reason; the folder checkpoint moves past it, so it is
processed exactly once. `retry` runs a held record through the same store path as ingest,
in its own transaction, and marks it "retried" with the outcome — a second retry does nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from escalate.clock import iso
from escalate.ingest.pipeline import _DATABASE_DOWN, DEFAULT_OPTIONS, IngestOptions, IngestResult, Source, store_mail
from escalate.mail.parse import UnparseableMail, parse_message
from escalate.outbound.templates import Renderer
from escalate.reports.queries import NotFound
from escalate.rules.model import Ruleset
from escalate.store.db import write_transaction
from escalate.store.models import Quarantine, database
from escalate.tickets import audit

SHOWN_HEADER_LINES = 60


def show(record_id: int) -> dict[str, Any]:
    """One record: reason, where it came from, its header block (as text) and size."""
    record = Quarantine.get_or_none(Quarantine.id == record_id)
    if record is None:
        raise QuarantineNotFound(f"no quarantine record {record_id} (see `escalate quarantine list`)")
    raw = bytes(record.raw)
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    header_lines = raw[:end].decode("utf-8", "replace").splitlines()[:SHOWN_HEADER_LINES]
    return {"id": record.id, "reason": record.reason, "received_at": iso(record.received_at),
            "folder": record.folder, "uid": record.uid, "sha256": record.sha256, "size": len(raw),
            "status": record.status or "held", "retried_at": iso(record.retried_at),
            "outcome": record.outcome, "headers": header_lines}


def raw(record_id: int) -> bytes:
    record = Quarantine.get_or_none(Quarantine.id == record_id)
    if record is None:
        raise QuarantineNotFound(f"no quarantine record {record_id} (see `escalate quarantine list`)")
    return bytes(record.raw)


class QuarantineNotFound(NotFound):
    """No quarantine record with that id (see `escalate quarantine list`)."""


def retry(ids: list[int] | None, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
                      options: IngestOptions = DEFAULT_OPTIONS, *, force: bool = False) -> list[tuple[int, str]]:
    """Process held quarantine records again (after a fix, or a raised limit). Each record is
    processed in its own transaction and marked "retried" with the outcome, so it is processed
    once; one still failing stays held with the new reason. Returns (id, outcome) pairs."""
    query = Quarantine.select(Quarantine.id)
    if ids:
        query = query.where(Quarantine.id.in_(ids))
        missing = set(ids) - {row.id for row in query}
        if missing:
            raise QuarantineNotFound(f"no quarantine record {', '.join(map(str, sorted(missing)))} "
                                     "(see `escalate quarantine list`)")
    else:
        query = query.where(Quarantine.status == "held")
    done = []
    for (record_id,) in query.tuples():
        with write_transaction():
            record = Quarantine.get_by_id(record_id)
            if record.status != "held" and not force:
                done.append((record.id, f"already {record.status}"))
                continue
            raw = bytes(record.raw)
            source = Source(record.folder, record.uidvalidity, record.uid)
            result = IngestResult()
            try:
                with database.obj.atomic():
                    if len(raw) > options.max_message_bytes:
                        raise UnparseableMail(f"too large: {len(raw)} bytes (limit {options.max_message_bytes})")
                    parsed_ok = _retry_one(raw, source, ruleset, renderer, secret, now, result, options)
                outcome = parsed_ok
                record.status, record.retried_at, record.outcome = "retried", now, outcome
            except _DATABASE_DOWN:
                raise
            except Exception as error:
                reason = getattr(error, "reason", None) or f"{type(error).__name__}: {error}"
                record.reason, record.outcome = f"retry failed: {reason}"[:1000], "still failing"
            record.save()
            audit.record(None, now, "escalate", "quarantine-retried", quarantine=record.id, outcome=record.outcome)
            done.append((record.id, record.outcome))
    return done


def _retry_one(raw: bytes, source: Source, ruleset: Ruleset, renderer: Renderer, secret: bytes, now: datetime,
               result: IngestResult, options: IngestOptions) -> str:
    parse_message(raw)  # raises UnparseableMail: the record stays held with the reason
    outcome = store_mail(raw, source, ruleset, renderer, secret, now, result, options)
    if result.tickets_created:
        outcome += " " + ", ".join(result.tickets_created)
    return outcome


