"""What a tier member receives: mails per ticket per tier per working day, with the shipped rules.yaml.

One ticket of each severity arrives on Monday 2 November 2026 at 08:30 in Berlin and nobody ever
answers it; the daemon ticks every 15 minutes, day and night, for `--days` days (the urgent
severity runs on the 24x7 calendar, the others on the office calendar). Printed per ticket: the
mails each tier group received, the lead's mails, the most tier mails in one tick, and mails per
tier per working day. A second table does the same with one tier-1 `#ack` after the second mail.

    .venv/bin/python bench/ladder_bench.py [--days 5] [--rules rules.yaml]

Not a timing benchmark: it counts. (It also runs against an older checkout of escalate, with
PYTHONPATH=<checkout>/daemon, to compare.)
"""

from __future__ import annotations

import argparse
import collections
import inspect
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from escalate.engine import tick as engine  # noqa: E402
from escalate.outbound.templates import Renderer  # noqa: E402
from escalate.rules.loader import load_ruleset  # noqa: E402
from escalate.store import db  # noqa: E402
from escalate.store.models import Outbox, Ticket  # noqa: E402
from escalate.tickets import lifecycle as tickets  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
OPENED = datetime(2026, 11, 2, 7, 30, tzinfo=timezone.utc)  # Monday 08:30 in Berlin
SECRET = b"l" * 32
SUBJECTS = {"urgent": "Checkout is down", "high": "Export is broken for all invoices",
            "normal": "Invoice address change", "low": "Feature request: dark mode"}
LADDER_KINDS = ("escalation", "reminder", "next-tier")


def run(rules: Path, days: int, ack_after: int | None) -> list[dict]:
    renderer = Renderer()
    ruleset = load_ruleset(rules, template_names=renderer.names())
    groups = {tier.group: tier.level for tier in ruleset.tiers}
    with tempfile.TemporaryDirectory() as workdir:
        db.connect(f"sqlite:///{Path(workdir) / 'ladder.db'}")
        with db.write_transaction():
            ids = {severity: tickets.open_ticket(subject=subject, normalised_subject=subject.lower(),
                                                 requester=f"{severity}@customer.example", requester_name="",
                                                 severity=severity, reference_prefix="T", now=OPENED,
                                                 reason="bench").id
                   for severity, subject in SUBJECTS.items()}
        most_in_a_tick: collections.Counter[int] = collections.Counter()
        acked: set[int] = set()
        now = OPENED
        while now < OPENED + timedelta(days=days):
            before = {i: _ladder_mails(i) for i in ids.values()}
            engine.tick(ruleset, renderer, SECRET, now)
            for ticket_id in ids.values():
                sent = _ladder_mails(ticket_id)
                most_in_a_tick[ticket_id] = max(most_in_a_tick[ticket_id], sent - before[ticket_id])
                if ack_after is not None and ticket_id not in acked and sent >= ack_after:
                    member = ruleset.tier(1).roster[0]
                    # the member's tier (an older escalate, compared with this one, takes no tier)
                    tier = {"tier": 1} if "tier" in inspect.signature(tickets.acknowledge).parameters else {}
                    with db.write_transaction():
                        tickets.acknowledge(Ticket.get_by_id(ticket_id), member, now, via="bench", **tier)
                    acked.add(ticket_id)
            now += timedelta(minutes=15)
        working_days = _working_days(days)
        result = []
        for severity, ticket_id in ids.items():
            per_tier: collections.Counter[int] = collections.Counter()
            leads = 0
            for mail in Outbox.select().where(Outbox.ticket == ticket_id):
                if mail.kind in LADDER_KINDS and mail.recipients and mail.recipients[0] in groups:
                    per_tier[groups[mail.recipients[0]]] += 1
                elif mail.kind != "confirmation":
                    leads += 1
            result.append({"severity": severity, "per_tier": dict(sorted(per_tier.items())), "leads": leads,
                           "total": sum(per_tier.values()), "most_in_one_tick": most_in_a_tick[ticket_id],
                           "per_tier_per_working_day": {tier: round(n / working_days, 1)
                                                        for tier, n in sorted(per_tier.items())}})
        db.close()
    return result


def _ladder_mails(ticket_id: int) -> int:
    return Outbox.select().where((Outbox.ticket == ticket_id) & Outbox.kind.in_(LADDER_KINDS)).count()


def _working_days(days: int) -> int:
    return sum(1 for n in range(days) if (OPENED + timedelta(days=n)).weekday() < 5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--rules", type=Path, default=REPO / "rules.yaml")
    args = parser.parse_args()
    for title, ack_after in (("nobody answers", None), ("a tier-1 #ack after the second mail", 2)):
        print(f"{args.rules.name}, {args.days} days from Monday 08:30 Berlin, ticks every 15 min: {title}")
        print(f"  {'severity':8} {'tier mails':>10} {'by tier':24} {'lead mails':>10} {'most/tick':>9}  per tier per working day")
        for row in run(args.rules, args.days, ack_after):
            print(f"  {row['severity']:8} {row['total']:>10} {str(row['per_tier']):24} {row['leads']:>10} "
                  f"{row['most_in_one_tick']:>9}  {row['per_tier_per_working_day']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
