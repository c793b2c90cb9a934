"""Restart storm on a large database — time from exec to READY=1, 20 restarts, and proof
that restarts do no duplicate work.

    .venv/bin/python bench/startup_bench.py [--tickets 100000] [--restarts 20] [--rules shipped|test]

Seeds a SQLite database with N open tickets (bulk SQL, not through the daemon), starts
`escalate run` under a notify socket as systemd would, and restarts it RESTARTS times with
SIGTERM while mail keeps arriving in a real Dovecot. Prints READY latency (min/median/max),
the stop time after SIGTERM, and the notifications the SMTP sink received per ticket.
Target: READY ≤ 5 s on a 100k-ticket database; no duplicate work.

Rules: the shipped rules.yaml (default), its clock set by ESCALATE_NOW to noon of an office day at least
two days ahead, so each new "Outage" ticket is urgent and already past its first-response time when the
daemon sees it; `--rules test` the suite's rules with the first-response time at 0m.
"""

from __future__ import annotations

import argparse
import collections
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from conftest import TEST_RULES, make_mail  # noqa: E402
from escalate.store import db  # noqa: E402
from escalate.testing.loopback import Dovecot, SmtpSink  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RULE_SETS = {"shipped": (REPO / "rules.yaml").read_text(encoding="utf-8"),
             "test": TEST_RULES.replace("no_first_response_for: 15m", "no_first_response_for: 0m")}
OFFICE_HOLIDAYS = {(12, 24), (12, 25), (12, 26), (1, 1)}  # the shipped office calendar's


def office_noon_ahead(days: int = 2) -> str:
    """Noon in Berlin on the first office day at least `days` days from now (the shipped office calendar)."""
    day = datetime.now(timezone.utc).date() + timedelta(days=days)
    while day.weekday() >= 5 or (day.month, day.day) in OFFICE_HOLIDAYS:
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 11, 0, tzinfo=timezone.utc).isoformat()  # 12:00 CET


def seed(path: Path, count: int) -> None:
    db.connect(f"sqlite:///{path}")
    db.close()
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    later = (now + timedelta(days=30)).isoformat(" ")
    rows = ((i + 1, f"T-{i + 1}", f"seeded {i}", f"seeded {i}", f"c{i % 5000}@seed.example", "", "open", "normal",
             now.isoformat(" "), now.isoformat(" "), later, 1, "[]", 0) for i in range(count))
    con = sqlite3.connect(path)
    con.executemany("INSERT INTO ticket (id, ref, subject, normalised_subject, requester, requester_name, status, severity,"
                    " created_at, updated_at, next_due_at, message_count, waiting_periods, drill)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    con.commit()
    con.close()


def wait_ready(sock: socket.socket, timeout: float) -> float:
    start = time.monotonic()
    sock.settimeout(timeout)
    while True:
        data = sock.recv(4096).decode()
        if "READY=1" in data.splitlines():
            return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--restarts", type=int, default=20)
    parser.add_argument("--rules", choices=sorted(RULE_SETS), default="shipped",
                        help="the shipped rules.yaml (default) or the suite's test rules")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="esc-startup-"))
    database = work / "escalate.db"
    t = time.monotonic()
    seed(database, args.tickets)
    print(f"seeded {args.tickets} open tickets in {time.monotonic() - t:.1f} s")
    (work / "rules.yaml").write_text(RULE_SETS[args.rules])
    notify_path = str(work / "n.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    with Dovecot(work / "dovecot") as dovecot, SmtpSink() as sink:
        env = {**os.environ, "ESCALATE_IMAP_URL": dovecot.url(), "ESCALATE_SMTP_URL": sink.url,
               "ESCALATE_DB_URL": f"sqlite:///{database}", "ESCALATE_RULES": str(work / "rules.yaml"),
               "ESCALATE_SECRET": secrets.token_hex(32), "NOTIFY_SOCKET": notify_path,
               "ESCALATE_POLL_SECONDS": "0.3", "ESCALATE_TICK_SECONDS": "0.3", "ESCALATE_SEND_SECONDS": "0.3"}
        if args.rules == "shipped":  # in summer time the noon is 13:00 there: an office hour all the same
            env["ESCALATE_NOW"] = office_noon_ahead()
        ready, stops = [], []
        for n in range(args.restarts):
            dovecot.append(make_mail(sender=f"customer{n}@example.net", subject=f"Outage {n}", body="down",
                                     message_id=f"storm-{n}@example.net"))
            start = time.monotonic()
            daemon = subprocess.Popen([sys.executable, "-m", "escalate", "run"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            wait_ready(notify, 60)
            ready.append(time.monotonic() - start)
            time.sleep(0.5 + (n % 3) * 0.4)  # restarts land at different points of the cycle
            stop = time.monotonic()
            daemon.send_signal(signal.SIGTERM)
            daemon.communicate(timeout=30)
            stops.append(time.monotonic() - stop)
            assert daemon.returncode == 0, f"exit {daemon.returncode}"
        # one last run drains whatever the last restart left
        daemon = subprocess.Popen([sys.executable, "-m", "escalate", "run"], env=env, stderr=subprocess.PIPE)
        wait_ready(notify, 60)
        deadline = time.monotonic() + 30
        while len(sink.messages) < args.restarts and time.monotonic() < deadline:
            time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
        per_ticket = collections.Counter(m.message["Subject"] for m in sink.messages)
        ids = collections.Counter(m.message["Message-ID"] for m in sink.messages)
    print(f"rules: {args.rules}")
    print(f"READY after exec: min {min(ready):.2f} s, median {statistics.median(ready):.2f} s, max {max(ready):.2f} s"
          f" over {len(ready)} starts on {args.tickets} open tickets")
    print(f"exit after SIGTERM: median {statistics.median(stops):.2f} s, max {max(stops):.2f} s")
    print(f"notifications received: {len(sink.messages)} for {args.restarts} new tickets; "
          f"distinct subjects {len(per_ticket)}; same Message-ID twice: {sum(1 for c in ids.values() if c > 1)}")


if __name__ == "__main__":
    main()
