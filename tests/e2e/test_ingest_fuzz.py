"""Fuzzed MIME: 1,000 seeded mutants of the hard-mail fixtures
through the real store path, then a sample of 100 APPENDed to Dovecot and ingested by
`escalate run --once`: no unhandled exception, and every input accounted for as a ticket message,
a machine-mail record or a quarantine record (or a duplicate of one that is)."""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

from escalate.clock import parse_time
from escalate.config import load_settings
from escalate.ingest.pipeline import IngestResult, Source, store_mail
from escalate.ingest.poller import options_for
from escalate.ops.service import open_app
from escalate.store import db
from escalate.store.db import write_transaction
from escalate.store.models import Message, Quarantine

from .ingest_support import NOW, append_many, cycle, rows

MAIL = Path(__file__).resolve().parents[1] / "data" / "mail"
SEED = 20261102
MUTANTS = 1_000
APPENDED = 100

OUTCOMES = {"ticket", "reply", "limited", "machine", "bounce", "own", "own-address", "quarantined", "duplicate"}


def _header_end(raw: bytes) -> int:
    match = re.search(rb"\r?\n\r?\n", raw)
    return match.start() if match else len(raw)


def mutate(raw: bytes, rng: random.Random) -> bytes:
    """One of the mutations: truncation, unbalanced quotes, bogus charsets, empty boundary,
    CR/LF mixing, broken encoded-words, bracketed Message-ID, `name*`, 200 KB header, bit rot, bad Date."""
    kind = rng.randrange(11)
    end = _header_end(raw)
    if kind == 0:
        return raw[:rng.randrange(1, max(2, len(raw)))]
    if kind == 1:
        return raw[:end].replace(b'"', b"", 1) + raw[end:] if b'"' in raw[:end] else b'To: "\r\n' + raw
    if kind == 2:
        return re.sub(rb"charset=\"?[\w-]+\"?", rng.choice([b"charset=cp-850", b"charset=ansi_x3.110-1983",
                                                          b"charset=x-bogus", b'charset=""', b"charset=utf-7"]), raw, count=3)
    if kind == 3:
        return re.sub(rb'boundary="?[^";\r\n]+"?', b'boundary=""', raw, count=1) if b"boundary" in raw else \
            b"Content-Type: multipart/mixed; boundary=\r\n" + raw
    if kind == 4:
        return raw.replace(b"\r\n", rng.choice([b"\r", b"\n", b"\n\r"]), rng.randrange(1, 20))
    if kind == 5:
        return raw[:end] + b"\r\nSubject: =?utf-8?q?broken=ZZ=?= =?bogus?b?!!!?= =?utf-8?b?4pyT" + raw[end:]
    if kind == 6:
        return re.sub(rb"Message-I[Dd]: <([^>]*)>", rb"Message-ID: <[\1]>", raw, count=1)
    if kind == 7:
        return raw[:end] + b'\r\nContent-Type: text/plain; name*\r\nContent-Disposition: attachment; filename*0*=x' + raw[end:]
    if kind == 8:
        return raw[:end] + b"\r\nX-Long: " + b"a=b; " * 40_000 + raw[end:]
    if kind == 9:
        data = bytearray(raw)
        for _ in range(rng.randrange(1, 30)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    return re.sub(rb"Date: [^\r\n]*", rng.choice([b"Date: Wed, 31 Feb 2021 99:99:99 +9999", b"Date: tomorrow",
                                                 b"Date: Fri, 01 Jan 9999 00:00:00 -1200"]), raw, count=1)


def mutants() -> list[bytes]:
    rng = random.Random(SEED)
    seeds = [re.sub(rb"\r?\n", b"\r\n", path.read_bytes()) for path in sorted(MAIL.glob("*.eml"))]
    return [mutate(rng.choice(seeds), rng) for _ in range(MUTANTS)]


def accounted_for(raw: bytes) -> bool:
    digest = hashlib.sha256(raw).hexdigest()
    return (Message.select().where(Message.sha256 == digest).exists()
            or Quarantine.select().where(Quarantine.sha256 == digest).exists())


def test_a_thousand_mutants_are_each_accounted_for(env, cli, dovecot):
    app = open_app(load_settings(env))
    options = options_for(app.settings)
    now = parse_time(NOW)
    inputs = mutants()
    outcomes = []
    for number, raw in enumerate(inputs):
        result = IngestResult()
        with write_transaction():  # the same store path ingest takes, a transaction per mutant
            outcomes.append(store_mail(raw, Source("fuzz", None, number + 1), app.ruleset, app.renderer, app.secret,
                                       now, result, options))
    assert set(outcomes) <= OUTCOMES
    unaccounted = []
    for raw, outcome in zip(inputs, outcomes):
        if outcome == "duplicate":
            continue  # an earlier input with the same Message-ID and body, or the same bytes
        if not accounted_for(raw):
            unaccounted.append(outcome)
    assert unaccounted == []
    stored = Message.select().count() + Quarantine.select().count()
    assert stored == len(inputs) - outcomes.count("duplicate")
    assert outcomes.count("quarantined") < len(inputs) // 4  # the parser copes with most of it
    db.close()

    # a sample through Dovecot and the whole daemon cycle
    sample = random.Random(SEED + 1).sample(inputs, APPENDED)
    append_many(dovecot, [raw for raw in sample if raw.strip()])
    env["ESCALATE_DB_URL"] = env["ESCALATE_DB_URL"].replace("escalate.db", "escalate-sample.db")
    cli("db", "migrate")
    result = cycle(cli)
    assert sum(result["ingested"].values()) == len([raw for raw in sample if raw.strip()])
    assert rows(env, "PRAGMA integrity_check") == [("ok",)]

