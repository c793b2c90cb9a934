"""How long an admin waits for a command: `escalate` as its own process, Python start-up and imports
included, on a database of the shipped rules' tickets.

    .venv/bin/python bench/cli_start_bench.py [--tickets 10000] [--runs 7]

Prints the median wall and CPU time (user + system of the child) of `--help`, `status --json`,
`tickets list --json` and `outbox list --json`, over RUNS runs each. Commands that need
only the database do not import the daemon's IMAP, SMTP and template modules.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from startup_bench import seed  # noqa: E402  (bulk SQL: N open tickets)

# (`rules check` as a process: bench/rules_load_bench.py)
COMMANDS = (["--help"], ["status", "--json"], ["tickets", "list", "--json"], ["outbox", "list", "--json"])


def timed(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "escalate", *args], env=env, capture_output=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 3):  # status exits 3 when no daemon runs
        raise SystemExit(f"escalate {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    database = Path(tempfile.mkdtemp(prefix="esc-cli-")) / "escalate.db"
    seed(database, args.tickets)
    env = {**os.environ, "ESCALATE_DB_URL": f"sqlite:///{database}", "ESCALATE_RULES": str(REPO / "rules.yaml"),
           "PYTHONPATH": str(REPO / "daemon")}
    print(f"{args.tickets} open tickets, shipped rules.yaml, median of {args.runs} runs")
    for command in COMMANDS:
        timed(command, env)  # the first run warms the page cache
        runs = [timed(command, env) for _ in range(args.runs)]
        print(f"  escalate {' '.join(command):24} {statistics.median(w for w, _ in runs) * 1000:6.0f} ms wall, "
              f"{statistics.median(c for _, c in runs) * 1000:6.0f} ms CPU")


if __name__ == "__main__":
    main()
