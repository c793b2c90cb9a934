"""What loading a rules file costs: every `escalate` command, `run --once` from cron, the daemon's
start and each reload parse and check the rules before doing anything else.

    .venv/bin/python bench/rules_load_bench.py [--rules rules.yaml] [--loads 50]

Loads the rules file (the shipped rules.yaml by default) LOADS times in this process and prints the CPU
time per load (median and max), and the wall time of `escalate rules check FILE` as its own process
(Python start-up and imports included), median of 5.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))

from escalate.rules.loader import load_ruleset  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rules", type=Path, default=REPO / "rules.yaml")
    parser.add_argument("--loads", type=int, default=50)
    args = parser.parse_args()
    load_ruleset(args.rules)  # imports and first-use caches out of the figure
    per_load = []
    for _ in range(args.loads):
        started = time.process_time()
        load_ruleset(args.rules)
        per_load.append(time.process_time() - started)
    walls = []
    for _ in range(5):
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "escalate", "rules", "check", str(args.rules)], check=True,
                       capture_output=True, env={"PYTHONPATH": str(REPO / "daemon"), "PATH": "/usr/bin:/bin"})
        walls.append(time.monotonic() - started)
    print(f"{args.rules.name}: load + check {statistics.median(per_load) * 1000:.1f} ms CPU median "
          f"(max {max(per_load) * 1000:.1f}) over {args.loads} loads; "
          f"`escalate rules check` as a process {statistics.median(walls) * 1000:.0f} ms wall median of 5")


if __name__ == "__main__":
    main()
