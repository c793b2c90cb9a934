"""`escalate demo`: the whole loop on loopback, with simulated time.

Starts a real Dovecot and an SMTP sink on 127.0.0.1, writes an env file for them with the
example rules, drops sample customer mail into the support mailbox, and runs the real CLI
(`escalate run --once --now …`) as time moves through a Monday morning. Tier members answer
by mail with `#ack`. At the end it prints the tickets and the mail that went out.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import click

from escalate.testing.loopback import Dovecot, ReceivedMail, SmtpSink

START = datetime.fromisoformat("2026-11-02T09:00:00+00:00")  # a Monday


def _mail(sender: str, subject: str, body: str, when: datetime, *, message_id: str | None = None,
          in_reply_to: str | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "support@example.com"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{message_id or secrets.token_hex(6) + '@mail.example'}>"
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    msg.set_content(body)
    return msg.as_bytes()


class Demo:
    def __init__(self, workdir: Path, rules: Path, echo=click.echo):
        self.workdir = workdir
        self.rules = rules
        self.echo = echo
        self.env_file = workdir / "escalate.env"

    def escalate(self, *args: str, at: datetime | None = None) -> str:
        command = ["escalate", "--env-file", str(self.env_file), *args]
        if at is not None:
            command += ["--now", at.isoformat()]
        self.echo(click.style(f"$ {shlex.join(command)}", fg="cyan"))
        done = subprocess.run([sys.executable, "-m", "escalate", *command[1:]], capture_output=True, text=True,
                              env={**os.environ, "PYTHONWARNINGS": "ignore"})
        output = (done.stdout + done.stderr).rstrip()
        if output:
            self.echo(output)
        if done.returncode != 0:
            raise click.ClickException(f"the demo step failed (exit {done.returncode})")
        return done.stdout

    def narrate(self, when: datetime, text: str) -> None:
        self.echo("")
        self.echo(click.style(f"[{when:%H:%M}] {text}", bold=True))

    def run(self) -> None:
        with Dovecot(self.workdir / "dovecot") as dovecot, SmtpSink() as sink:
            self.env_file.write_text(
                f"ESCALATE_IMAP_URL={dovecot.url()}\nESCALATE_SMTP_URL={sink.url}\n"
                f"ESCALATE_DB_URL=sqlite:///{self.workdir / 'escalate.db'}\nESCALATE_RULES={self.rules}\n"
                f"ESCALATE_SECRET={secrets.token_hex(32)}\n", encoding="utf-8")
            self.echo(f"Dovecot IMAP on {dovecot.host}:{dovecot.port}, SMTP sink on {sink.host}:{sink.port}, "
                      f"state in {self.workdir}")
            self.echo(f"rules: {self.rules}")
            self.escalate("rules", "check", str(self.rules))
            self.escalate("db", "migrate")  # creates the database: no other command does

            t = START
            self.narrate(t, "Three customers write to support@example.com.")
            dovecot.append(_mail("Carl Customer <carl@customer.example>", "Checkout is down for all our shops",
                                 "Since 08:55 no order goes through; payment returns error 502.\nCarl", t,
                                 message_id="carl-1@customer.example"))
            dovecot.append(_mail("Olga <olga@shop.example>", "Error when exporting invoices",
                                 "The CSV export fails with an error since this morning.", t))
            dovecot.append(_mail("Pia <pia@store.example>", "Question about VAT on invoices",
                                 "Can we show VAT per line?", t))
            self.escalate("run", "--once", at=t)
            self.escalate("tickets", "list", at=t)

            for minutes, text in ((16, "Nobody answered the urgent ticket in 15 minutes: tier 1 is told."),
                                  (26, "Still nobody: a reminder."),
                                  (36, "A second reminder."),
                                  (46, "Two reminders unanswered: it goes to tier 2, the specialists.")):
                t = START + timedelta(minutes=minutes)
                self.narrate(t, text)
                self.escalate("run", "--once", at=t)

            tier2 = next(m for m in sink.messages if m.rcpt_tos == ["tier2@example.com"])
            t = START + timedelta(minutes=50)
            self.narrate(t, "Erin, on the tier-2 roster, replies to that mail with #ack.")
            dovecot.append(_mail("Erin <erin@example.com>", "Re: " + str(tier2.message["Subject"]),
                                 "#ack\nLooking at the payment gateway now.\n\n> (quoted escalation)", t,
                                 in_reply_to=str(tier2.message["Message-ID"])))
            self.escalate("run", "--once", at=t)

            t = START + timedelta(minutes=61)
            self.narrate(t, "The high-severity ticket has had no response for its 1-hour target; the "
                            "acknowledged one stays quiet.")
            self.escalate("run", "--once", at=t)
            self.escalate("tickets", "list", at=t)
            self.escalate("tickets", "show", "T-1")  # what it shows does not depend on the time

            self.echo("")
            self.echo(click.style(f"The SMTP sink received {len(sink.messages)} messages:", bold=True))
            for mail in sink.messages:
                self.echo(f"  to {', '.join(mail.rcpt_tos):22} {mail.message['Subject']}")
            self._print_mail(sink.messages[0])

    def _print_mail(self, mail: ReceivedMail) -> None:
        self.echo("")
        self.echo(click.style("The first escalation, as tier 1 saw it:", bold=True))
        for name in ("From", "To", "Subject", "Message-ID", "In-Reply-To", "Auto-Submitted"):
            self.echo(f"{name}: {mail.message[name]}")
        self.echo("")
        self.echo(mail.message.get_body(("plain",)).get_content().rstrip())


def run_demo(workdir: Path | None, rules: Path) -> Path:
    workdir = workdir or Path(tempfile.mkdtemp(prefix="escalate-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    Demo(workdir.resolve(), rules.resolve()).run()
    return workdir
