"""A steady tick with the shipped rules.yaml when open tickets belong to large incidents.

Two figures (on SQLite, the daemon's default):
  1. 10,000 open tickets in ten incidents of 1,000 customers each, 100 of them due (re-checked:
     something changed on them), against the same 10,000 tickets with no incidents. Evaluating a
     ticket reads its incident's facts (customers and their join times, the primary ticket, the
     incident rules that acted) from the incident's own rows, once per batch, never its members.
     Target: within 1.5x.
  2. After a storm of 5,000 tickets in incidents (their incident escalations done), one new mail
     joins an incident: the tick that follows evaluates the new ticket and the incident's primary.
     Target: under 50 ms.

    .venv/bin/python bench/incident_tick_bench.py [--repeat 7]

Each row prints wall and own-CPU medians; the machine is shared, so CPU is the steadier figure.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from escalate.engine import tick as engine  # noqa: E402
from escalate.outbound.templates import Renderer  # noqa: E402
from escalate.rules.loader import load_ruleset  # noqa: E402
from escalate.store import db  # noqa: E402
from escalate.store.models import Incident, IncidentCustomer, Ticket  # noqa: E402
from escalate.tickets import lifecycle as tickets  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 4, 10, 0, tzinfo=timezone.utc)  # a Wednesday, inside office hours
SECRET = b"i" * 32
DUE = 100


def add_open(count: int, *, start: int, incident_size: int | None, created_at: datetime) -> list[int]:
    """`count` open normal tickets, each from its own customer; in incidents of `incident_size`
    (None: none), with the incident's customers and primary stored as ingest leaves them."""
    ids: list[int] = []
    with db.write_transaction():
        for chunk in range(0, count, 5000):
            Ticket.insert_many([{"ref": f"T-{start + n}", "subject": f"checkout fails {start + n}",
                                 "normalised_subject": f"checkout fails {start + n}",
                                 "requester": f"c{start + n}@customer.example", "status": "open", "severity": "normal",
                                 "created_at": created_at, "updated_at": created_at, "next_due_at": NOW + timedelta(days=3),
                                 "message_count": 1, "waiting_periods": []}
                                for n in range(chunk, min(count, chunk + 5000))]).execute()
        ids = [t.id for t in Ticket.select(Ticket.id).where(Ticket.id >= start).order_by(Ticket.id)]
        if incident_size:
            for first in range(0, len(ids), incident_size):
                members = ids[first:first + incident_size]
                incident = Incident.create(subject="checkout fails", created_at=created_at, last_ticket_at=created_at,
                                           customers=len(members), primary_ticket_id=members[0],
                                           rules_fired=["multi-customer-incident"])
                IncidentCustomer.insert_many([{"incident": incident.id, "requester": f"c{start + i - ids[0]}@customer.example",
                                               "joined_at": created_at + timedelta(seconds=n)}
                                              for n, i in enumerate(members)]).execute()
                Ticket.update(incident=incident.id).where(Ticket.id.in_(members)).execute()
    return ids


def timed_tick(ruleset, renderer) -> tuple[float, float, int]:
    db.database.obj.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    started, started_cpu = time.perf_counter(), time.process_time()
    result = engine.tick(ruleset, renderer, SECRET, NOW)
    return (time.perf_counter() - started) * 1000, (time.process_time() - started_cpu) * 1000, result.evaluated


def steady(ruleset, renderer, incident_size: int | None, repeat: int) -> tuple[list[float], list[float]]:
    with tempfile.TemporaryDirectory() as workdir:
        db.connect(f"sqlite:///{Path(workdir) / 'incidents.db'}")
        ids = add_open(10_000, start=1, incident_size=incident_size, created_at=NOW - timedelta(hours=2))
        walls, cpus = [], []
        for round_ in range(repeat + 1):
            due = ids[round_ * DUE::97][:DUE]  # spread over every incident, primaries among them
            Ticket.update(next_due_at=NOW).where(Ticket.id.in_(due)).execute()
            wall, cpu, evaluated = timed_tick(ruleset, renderer)
            assert evaluated == len(due), (evaluated, len(due))
            if round_:  # the first warms the caches (the incidents' join times among them)
                walls.append(wall)
                cpus.append(cpu)
        db.close()
    return walls, cpus


def after_storm(ruleset, renderer, repeat: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as workdir:
        db.connect(f"sqlite:///{Path(workdir) / 'storm.db'}")
        add_open(5_000, start=1, incident_size=500, created_at=NOW - timedelta(minutes=30))
        engine.tick(ruleset, renderer, SECRET, NOW)  # nothing due: the storm's own ticks are done
        for n in range(repeat):
            with db.write_transaction():
                ticket = tickets.open_ticket(subject=f"checkout fails {n}", normalised_subject=f"checkout fails {n}",
                                             requester=f"late{n}@customer.example", requester_name="",
                                             severity="normal", reference_prefix="T", now=NOW, reason="bench")
                incident_id = Ticket.get_by_id(1 + 500 * (n % 10)).incident_id
                tickets.join_incident(ticket, incident_id, NOW, similar_to="T-1")
            wall, cpu, _evaluated = timed_tick(ruleset, renderer)
            walls.append(wall)
            cpus.append(cpu)
        db.close()
    return walls, cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    renderer = Renderer()
    ruleset = load_ruleset(REPO / "rules.yaml", template_names=renderer.names())
    rows = {}
    for label, size in (("no incidents", None), ("incidents of 1,000", 1000)):
        walls, cpus = steady(ruleset, renderer, size, args.repeat)
        rows[label] = statistics.median(cpus)
        print(f"steady tick, 10,000 open, {DUE} due, {label:18}: wall median {statistics.median(walls):6.1f} ms, "
              f"own CPU median {statistics.median(cpus):6.1f} ms (min {min(cpus):.1f}, max {max(cpus):.1f})")
    ratio = rows["incidents of 1,000"] / rows["no incidents"]
    print(f"  CPU with incidents / without = {ratio:.2f} (target <= 1.5)")
    walls, cpus = after_storm(ruleset, renderer, args.repeat)
    print(f"one new mail joining an incident after a 5,000-ticket storm: tick wall median {statistics.median(walls):.1f} ms "
          f"(max {max(walls):.1f}), own CPU median {statistics.median(cpus):.1f} ms (target < 50 ms)")
    return 0 if ratio <= 1.5 and statistics.median(walls) < 50 else 1


if __name__ == "__main__":
    sys.exit(main())
