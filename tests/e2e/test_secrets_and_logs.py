"""Secrets and logs: a weak ESCALATE_SECRET is refused with one clear line, a refusal names the
token lifetime as set (1h, not "0 days"), and `-vv` logs the SQL but never its parameters, which
are the mail itself. Real Dovecot, aiosmtpd and CLI; SQLite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from email.message import EmailMessage

import pytest

from .log_lines import parse_lines


@pytest.mark.parametrize("variable, value", [
    ("ESCALATE_SECRET", "abc"),
    ("ESCALATE_SECRET", "0123456789abcdef" * 3),  # 48 hex digits: 24 bytes of key
    ("ESCALATE_SECRET_PREVIOUS", "old"),  # still verifies tokens, so it must be as strong
])
@pytest.mark.parametrize("command", [("run", "--once"), ("run",)])
def test_a_weak_secret_is_refused_before_anything_starts(variable, value, command, env, dovecot, mail, cli):
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="502"))
    env[variable] = value
    result = cli(*command, expect=2)
    [line] = result.output.strip().splitlines()
    assert line.startswith(f"Error: {variable} has ") and "fewer than the 32 needed" in line
    assert "openssl rand -hex 32" in line and value not in line.replace(variable, "")
    # nothing was ingested meanwhile: the mail is still there for a daemon with a good secret
    env.pop("ESCALATE_SECRET_PREVIOUS", None)
    env["ESCALATE_SECRET"] = "5f" * 32
    assert json.loads(cli("run", "--once", "--json").output)["tickets_created"] == ["T-1"]


def test_the_refusal_names_a_one_hour_token_lifetime_as_such(env, rules_file, dovecot, smtp_sink, mail, cli):
    env["ESCALATE_TOKEN_TTL"] = "1h"
    dovecot.append(mail(sender="carl@customer.example", subject="Checkout is down", body="502"))
    cli("run", "--once", "--now", "2026-11-02T09:00:00+00:00")
    cli("run", "--once", "--now", "2026-11-02T09:16:00+00:00")
    [notification] = smtp_sink.messages
    late = EmailMessage()
    late["From"], late["To"] = "alice@example.com", "support@example.com"
    late["Subject"] = "Re: " + str(notification.message["Subject"])
    late["Message-ID"] = "<late-ack@client.example>"
    late["In-Reply-To"] = late["References"] = notification.message["Message-ID"]
    late["Date"] = "Mon, 02 Nov 2026 11:30:00 +0000"
    late.set_content("#ack\n")
    dovecot.append(late.as_bytes())
    cli("run", "--once", "--now", "2026-11-02T11:30:00+00:00")  # two hours on: past the lifetime
    [refusal] = [m for m in smtp_sink.messages if m.rcpt_tos == ["alice@example.com"]]
    text = refusal.message.get_body(("plain",)).get_content()
    assert "older than the token lifetime (1h)" in text and "0 days" not in text


def test_debug_logging_shows_statements_but_not_the_mail_in_them(env, dovecot, smtp_sink, mail):
    marker = "Kontonummer-DE89370400440532013000"
    dovecot.append(mail(sender="carl@customer.example", subject=f"Checkout is down {marker}", body=f"IBAN {marker}"))
    done = subprocess.run([sys.executable, "-m", "escalate", "-vv", "run", "--once", "--now", "2026-11-02T09:16:00+00:00"],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    statements = [r["msg"] for r in parse_lines(done.stderr, "logfmt") if r["logger"] == "peewee"]
    assert [s for s in statements if s.startswith('INSERT INTO "message"')]  # -vv is still useful: the statements are there
    assert marker not in done.stderr
