"""The simulated long run at full size: 30 simulated days, 500 tickets a day, business-hours calendars, stepped with the
clock; then `rules simulate` replays the stored history. Prints the figures and whether the replay
predicted exactly the escalations the daemon took (exit 1 if not).

    .venv/bin/python bench/l5_bench.py [--days 30] [--per-day 500]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.l5 import run_l5  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=500)
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        result = run_l5(Path(workdir) / "l5.db", days=args.days, per_day=args.per_day, seed=args.seed,
                        fast_disk=True)
        elapsed = time.perf_counter() - started
    report = result.report
    print(f"long run: {args.days} days x {args.per_day} tickets/day = {result.tickets} tickets, {result.ticks} ticks "
          f"(stepped --now), {elapsed:.0f} s wall")
    print(f"escalation steps taken by the daemon: {report['actual']} (outbox notifications: {result.notifications})")
    print(f"escalation steps predicted by rules simulate: {len(report['predicted'])}; agree: {report['agree']}; "
          f"only predicted: {len(report['only_predicted'])}; only taken: {len(report['only_actual'])}")
    for rule, count in Counter(step["rule"] for step in report["predicted"]).most_common():
        print(f"  {rule:28} {count}")
    exact = not report["only_predicted"] and not report["only_actual"] and report["agree"] == report["actual"]
    print("agreement: 100%" if exact else "agreement: NOT exact")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
