"""A working day after a weekend backlog, with the shipped rules.yaml and a real SMTP sink.

5,000 open normal tickets came in over the weekend (office calendar: their clocks start Monday
08:00 Berlin) and nobody has answered any. The daemon ticks every 30 s for 8 hours of Monday,
each tick followed by the sender (render and send to an aiosmtpd sink on loopback). At 12:00 the
first-response target passes for all 5,000 at the same instant — the backlog the shipped rules
turn into escalations.

Printed: the peak and median tick CPU, the ticks that evaluated most, and the mails each tier
group received (the groups' hourly ceiling holds what is past it for one summary).

    .venv/bin/python bench/working_day_bench.py [--tickets 5000] [--hours 8]
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from escalate.config import parse_server_url  # noqa: E402
from escalate.engine import tick as engine  # noqa: E402
from escalate.outbound import outbox  # noqa: E402
from escalate.outbound.templates import Renderer  # noqa: E402
from escalate.rules.loader import load_ruleset  # noqa: E402
from escalate.store import db  # noqa: E402
from escalate.store.models import Ticket  # noqa: E402
from escalate.testing.loopback import SmtpSink  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SATURDAY = datetime(2026, 11, 7, 10, 0, tzinfo=timezone.utc)
MONDAY = datetime(2026, 11, 9, 7, 0, tzinfo=timezone.utc)  # 08:00 in Berlin: the office opens
SECRET = b"w" * 32


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--hours", type=float, default=8)
    args = parser.parse_args()
    renderer = Renderer()
    ruleset = load_ruleset(REPO / "rules.yaml", template_names=renderer.names())
    groups = {tier.group: tier.level for tier in ruleset.tiers}
    with tempfile.TemporaryDirectory() as workdir, SmtpSink() as sink:
        db.connect(f"sqlite:///{Path(workdir) / 'day.db'}")
        url = parse_server_url("ESCALATE_SMTP_URL", sink.url, ("smtp",))
        with db.write_transaction():
            for start in range(0, args.tickets, 5000):
                Ticket.insert_many([{"ref": f"T-{n + 1}", "subject": f"Question about invoice {n}",
                                     "normalised_subject": f"question about invoice {n}",
                                     "requester": f"c{n}@customer.example", "status": "new", "severity": "normal",
                                     "created_at": SATURDAY + timedelta(seconds=n), "updated_at": SATURDAY,
                                     "last_customer_message_at": SATURDAY, "next_due_at": SATURDAY,
                                     "message_count": 1, "waiting_periods": []}
                                    for n in range(start, min(args.tickets, start + 5000))]).execute()
        engine.tick(ruleset, renderer, SECRET, SATURDAY + timedelta(hours=1))  # the weekend's own look
        cpus, walls, evaluated, sending = [], [], [], []
        now, end = MONDAY, MONDAY + timedelta(hours=args.hours)
        while now < end:
            more_due = True
            while more_due:  # as the daemon does: a tick with its time budget, again at once if more is due
                started, started_cpu = time.perf_counter(), time.process_time()
                result = engine.tick(ruleset, renderer, SECRET, now, budget=engine.DAEMON_TICK_BUDGET)
                cpus.append(time.process_time() - started_cpu)
                walls.append(time.perf_counter() - started)
                evaluated.append((result.evaluated, result.notifications, now))
                more_due = result.more_due
            started = time.perf_counter()
            outbox.send_due(url, now, renderer=renderer)
            sending.append(time.perf_counter() - started)
            now += timedelta(seconds=30)
        db.close()
        received = collections.Counter()
        for mail in sink.messages:
            for recipient in mail.rcpt_tos:
                kind = mail.message["X-Escalate-Kind"]
                received[(f"tier {groups[recipient]} group" if recipient in groups else "leads and others", kind)] += 1
    peak = max(range(len(cpus)), key=cpus.__getitem__)
    print(f"{args.tickets} open tickets, {len(cpus)} ticks (every 30 s, and at once after one that stopped at "
          f"its {engine.DAEMON_TICK_BUDGET:g} s budget) over {args.hours:g} h on Monday (shipped rules)")
    print(f"tick CPU: median {1000 * statistics.median(cpus):.1f} ms, peak {cpus[peak]:.2f} s at "
          f"{evaluated[peak][2]:%H:%M} UTC ({evaluated[peak][0]} evaluated, {evaluated[peak][1]} mails queued); "
          f"wall peak {max(walls):.2f} s; sender wall peak {max(sending):.2f} s")
    busiest = sorted(evaluated, key=lambda item: -item[0])[:3]
    print("busiest ticks: " + "; ".join(f"{at:%H:%M:%S} {n} evaluated, {q} queued" for n, q, at in busiest))
    for (who, kind), count in sorted(received.items()):
        print(f"  {who:18} {kind:14} {count}")
    return 0 if max(cpus) < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
