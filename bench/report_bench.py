"""`escalate report` over a large history: seed a SQLite database with N tickets (default 100,000)
and their escalations and notifications, then time the report (target: under 5 s).

    .venv/bin/python bench/report_bench.py [--tickets 100000] [--db /tmp/report-bench.db] [--html FILE]

The history is deterministic (a fixed random seed) and shaped like a support team's year: four
severities, a third of the tickets escalated, most acknowledged after zero to three reminders,
a few reaching tier 3, recurring subjects, repeat senders, some waiting periods, business-hours
calendars from the example rules.yaml. The report runs through the CLI entry point in-process
(`escalate report --json`), the way a lead would run it; the seeding time is printed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from click.testing import CliRunner  # noqa: E402
from escalate.cli import main  # noqa: E402
from escalate.store import db  # noqa: E402
from escalate.store.models import Escalation, Outbox, Ticket, database  # noqa: E402

SEVERITIES = [("urgent", 0.05), ("high", 0.15), ("normal", 0.6), ("low", 0.2)]
SUBJECTS = ["Checkout is down", "Cannot log in", "Invoice amount wrong", "Password reset mail missing",
            "Export to CSV fails", "API returns 502", "Feature request: dark mode", "Slow dashboard",
            "Question about pricing", "Data loss after sync"]
END = datetime(2026, 11, 1, tzinfo=timezone.utc)


def seed(path: Path, tickets: int) -> None:
    if path.exists():
        path.unlink()
    db.connect(f"sqlite:///{path}")
    rng = random.Random(8)
    start = END - timedelta(days=365)
    senders = [f"customer{i}@{rng.choice(['acme', 'globex', 'initech', 'umbrella', 'hooli'])}{i % 40}.example"
               for i in range(5000)]
    ticket_rows, escalation_rows, outbox_rows = [], [], []
    for i in range(1, tickets + 1):
        created = start + timedelta(seconds=rng.uniform(0, 365 * 86400))
        severity = rng.choices([s for s, _ in SEVERITIES], [w for _, w in SEVERITIES])[0]
        subject = rng.choice(SUBJECTS) + ("" if rng.random() < 0.7 else f" #{rng.randint(1, 5000)}")
        responded = created + timedelta(minutes=rng.expovariate(1 / 90))
        resolved = created + timedelta(hours=rng.expovariate(1 / 20))
        status = rng.choices(["resolved", "closed", "open", "waiting"], [0.5, 0.4, 0.07, 0.03])[0]
        escalated = rng.random() < 0.33
        tier = None
        waits = []
        if rng.random() < 0.1:
            w = created + timedelta(hours=rng.uniform(0, 4))
            waits = [[w.isoformat(), (w + timedelta(hours=rng.uniform(1, 30))).isoformat()]]
        ack = None
        if escalated:
            tier = rng.choices([1, 2, 3], [0.6, 0.3, 0.1])[0]
            step = rng.choices([0, 1, 2, 3, 4], [0.5, 0.25, 0.12, 0.08, 0.05])[0]
            began = created + timedelta(minutes=15)
            acked = rng.random() < 0.9
            ack = began + timedelta(minutes=rng.expovariate(1 / 25)) if acked else None
            rule = rng.choice(["urgent-no-first-response", "high-no-first-response", "agent-requested",
                               "multi-customer-incident", "next-response-overdue"])
            escalation_rows.append({"ticket": i, "rule": rule, "tier": tier, "step": step, "started_at": began,
                                    "last_step_due_at": began, "state": "acknowledged" if acked else "ended",
                                    "acknowledged_at": ack, "acknowledged_by": "alice@example.com" if acked else None})
            for s in range(step + 1):
                kind = "escalation" if s == 0 else ("next-tier" if s == step and tier > 1 else "reminder")
                outbox_rows.append({"ticket": i, "kind": kind, "rule": rule, "step": s,
                                    "due_at": began + timedelta(minutes=10 * s), "tier": tier,
                                    "message_id": f"<bench.{i}.{s}@example.com>", "mail_from": "support@example.com",
                                    "recipients": [f"tier{tier}@example.com"], "subject": f"[T-{i}] {subject}",
                                    "raw": b"", "status": "sent", "next_attempt_at": began, "created_at": began,
                                    "sent_at": began})
        ticket_rows.append({
            "id": i, "ref": f"T-{i}", "subject": subject, "normalised_subject": subject.lower(),
            "requester": rng.choice(senders), "status": status, "severity": severity, "tier": tier,
            "created_at": created, "updated_at": created, "first_response_at": responded,
            "acknowledged_at": ack, "resolved_at": resolved if status in ("resolved", "closed") else None,
            "waiting_periods": waits, "message_count": rng.randint(1, 6),
            "waiting_since": created + timedelta(hours=2) if status == "waiting" else None,
        })
    with database.atomic():
        for model, rows in ((Ticket, ticket_rows), (Escalation, escalation_rows), (Outbox, outbox_rows)):
            for offset in range(0, len(rows), 2000):
                model.insert_many(rows[offset:offset + 2000]).execute()
    db.close()
    print(f"seeded {len(ticket_rows)} tickets, {len(escalation_rows)} escalations, {len(outbox_rows)} notifications")


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/escalate-report-bench.db"))
    parser.add_argument("--html", type=Path, help="also write the HTML report here")
    parser.add_argument("--reuse", action="store_true", help="keep the database seeded by an earlier run")
    args = parser.parse_args()
    if not (args.reuse and args.db.exists()):
        began = time.perf_counter()
        seed(args.db, args.tickets)
        print(f"seeding took {time.perf_counter() - began:.1f} s")
    env = {"ESCALATE_DB_URL": f"sqlite:///{args.db}", "ESCALATE_RULES": str(REPO / "rules.yaml"),
           "ESCALATE_SECRET": "bench"}
    command = ["report", "--since", "2025-11-01", "--until", "2026-11-01", "--now", END.isoformat(), "--json"]
    runs = []
    for _ in range(3):
        began = time.perf_counter()
        result = CliRunner().invoke(main, command, env=env, catch_exceptions=False)
        runs.append(time.perf_counter() - began)
        assert result.exit_code == 0, result.output
        db.close()
    report = json.loads(result.stdout)
    print(f"escalate {' '.join(command)}")
    print(f"  over {report['totals']['tickets']} tickets ({report['totals']['escalated']} escalated, "
          f"{report['sla_breaches']['total']['first_response']} first-response and "
          f"{report['sla_breaches']['total']['resolution']} resolution breaches)")
    print(f"  runs: {', '.join(f'{r:.2f} s' for r in runs)}; best {min(runs):.2f} s (target < 5 s)")
    recent = ["report", "--now", END.isoformat(), "--json"]  # the default window: the last 30 days
    began = time.perf_counter()
    result = CliRunner().invoke(main, recent, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    db.close()
    print(f"escalate {' '.join(recent)}: {json.loads(result.stdout)['totals']['tickets']} tickets in "
          f"{time.perf_counter() - began:.2f} s")
    if args.html:
        began = time.perf_counter()
        result = CliRunner().invoke(main, command[:-1] + ["--html", str(args.html)], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        print(f"  --html {args.html}: {time.perf_counter() - began:.2f} s")


if __name__ == "__main__":
    os.environ.pop("ESCALATE_NOW", None)
    main_bench()
