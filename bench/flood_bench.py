"""A flood from one outside address, as a tier group lives it: the shipped rules.yaml, real Dovecot
and aiosmtpd on loopback, `escalate run --once` every 10 minutes for 3 hours while one address
sends 200 "urgent" mails (11 every 10 minutes, each a new subject), and a second case of 200
distinct customers writing at the same pace. Counts the mails the tier groups and leads receive.

    .venv/bin/python bench/flood_bench.py

(Before the per-sender ticket limit, the escalation ladder and the groups' hourly ceiling, the
first case sent 3,217 mails to the tier groups.)
"""

from __future__ import annotations

import argparse
import collections
import secrets
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from click.testing import CliRunner  # noqa: E402
from escalate import clock  # noqa: E402
from escalate.cli import main as escalate  # noqa: E402
from escalate.testing.loopback import Dovecot, SmtpSink  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
GROUPS = {"tier1@example.com", "tier2@example.com", "tier3@example.com"}


def flood_mail(sender: str, n: int, at: datetime) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, "support@example.com"
    msg["Subject"] = f"URGENT: outage number {n}, everything is down"
    msg["Message-ID"] = f"<flood{n}.{secrets.token_hex(4)}@flood.example>"
    msg["Date"] = format_datetime(at)
    msg.set_content("Everything is down, urgent!")
    return msg.as_bytes()


def run(senders) -> collections.Counter:
    with tempfile.TemporaryDirectory() as workdir, Dovecot(Path(workdir) / "dovecot") as dovecot, SmtpSink() as sink:
        env = {"ESCALATE_IMAP_URL": dovecot.url(), "ESCALATE_SMTP_URL": sink.url,
               "ESCALATE_DB_URL": f"sqlite:///{workdir}/flood.db", "ESCALATE_RULES": str(REPO / "rules.yaml"),
               "ESCALATE_SECRET": secrets.token_hex(32), "ESCALATE_ATTACHMENTS_DIR": f"{workdir}/attachments"}
        CliRunner().invoke(escalate, ["db", "migrate"], env=env)  # `run` creates no database
        sent = 0
        for tick in range(19):  # 0, 10, … 180 minutes
            at = T0 + timedelta(minutes=10 * tick)
            for _ in range(11):
                if sent < 200:
                    dovecot.append(flood_mail(senders(sent), sent, at))
                    sent += 1
            result = CliRunner().invoke(escalate, ["run", "--once", "--now", at.isoformat()], env=env)
            clock.set_now(None)
            if result.exit_code != 0:
                raise SystemExit(result.output)
        counts: collections.Counter = collections.Counter()
        for message in sink.messages:
            for recipient in message.rcpt_tos:
                counts["tier groups" if recipient in GROUPS else "others"] += 1
                counts[f"  {message.message['X-Escalate-Kind']} to {'groups' if recipient in GROUPS else 'others'}"] += 1
        return counts


def main() -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # no options: --help says what it does
    for title, senders in (("one address, 200 urgent mails in 3 h", lambda n: "angry@outside.example"),
                           ("200 customers, one urgent mail each in 3 h", lambda n: f"c{n}@customer{n}.example")):
        counts = run(senders)
        print(f"{title}: {counts['tier groups']} mails to the tier groups, {counts['others']} to others")
        for key, value in sorted(counts.items()):
            if key.startswith("  "):
                print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
