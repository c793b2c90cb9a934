"""Data only escalate's user can read, whatever the umask: `init` and the daemon make the state
directory, the database files, the lock, attachments/ and its packs 0700/0600, and tighten those
an older version left readable. Real Dovecot, aiosmtpd and CLI; SQLite."""

from __future__ import annotations

import os
import stat
from email.message import EmailMessage
from pathlib import Path

import pytest


def mail_with_attachment() -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "carl@customer.example", "support@example.com", "Invoice wrong"
    msg["Message-ID"], msg["Date"] = "<carl-invoice@customer.example>", "Mon, 02 Nov 2026 09:00:00 +0000"
    msg.set_content("See the attached invoice.")
    msg.add_attachment(b"%PDF-1.4 account 0532013000", maintype="application", subtype="pdf", filename="invoice.pdf")
    return msg.as_bytes()


def modes(root: Path) -> dict[str, str]:
    """Every file and directory under root (root included), with its permission bits."""
    found = {".": oct(stat.S_IMODE(root.stat().st_mode))}
    for path in root.rglob("*"):
        found[str(path.relative_to(root))] = oct(stat.S_IMODE(path.stat().st_mode))
    return found


def expected(found: dict[str, str]) -> dict[str, str]:
    return {name: "0o644" if name == "rules.yaml" else "0o700" if name in (".", "attachments", "attachments/packs")
            else "0o600" for name in found}


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_init_and_the_daemon_keep_mail_and_tokens_private(umask, tmp_path, env, dovecot, smtp_sink, cli):
    state = tmp_path / "var" / "escalate"
    env["ESCALATE_DB_URL"] = f"sqlite:///{state / 'escalate.db'}"
    previous = os.umask(umask)
    try:
        cli("init", str(state))
        dovecot.append(mail_with_attachment())
        cli("run", "--once", "--now", "2026-11-02T09:20:00+00:00")
        found = modes(state)
        assert any(name.endswith(".pack") for name in found) and "escalate.db.lock" in found
        assert found == expected(found)
        # what an older version left world-readable is tightened by the next run
        for name in ("escalate.db", "escalate.db.lock", "attachments", "attachments/packs"):
            os.chmod(state / name, 0o755)
        cli("run", "--once", "--now", "2026-11-02T09:30:00+00:00")
        found = modes(state)
        assert found == expected(found)
    finally:
        os.umask(previous)
