"""`escalate init DIR`: a commented rules.yaml, an env file (mode 0600, with a fresh secret) and the
database, laid out the way whatever runs escalate will find them.

A configuration directory under /etc is the shipped systemd unit's (`EnvironmentFile=
/etc/escalate/escalate.env`). That unit runs with `ProtectSystem=strict`, so everything but its
`StateDirectory=` is read-only to the daemon: the database then goes in the state directory
(`/var/lib/escalate`), never beside the configuration, and the configuration directory stays
readable to the unit's dynamic user (rules.yaml is read by the daemon; the env file by systemd, as
root). Anywhere else (a checkout, a home directory) the database goes in DIR itself.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from escalate.store import db, private
from escalate.errors import InputError

# what the shipped unit's `StateDirectory=escalate` gives the daemon (systemd puts it under /var/lib)
SERVICE_STATE_DIRECTORY = Path("/var/lib/escalate")
SYSTEM_CONFIG_ROOT = Path("/etc")
CONFIG_DIRECTORY_MODE = 0o755  # the service's configuration: rules.yaml readable by its user; the env file is 0600


class InitError(InputError, ValueError):
    """init would overwrite a file (without --force)."""


@dataclass(frozen=True)
class Written:
    rules_path: Path
    env_path: Path
    db_url: str


def is_service_configuration(directory: Path) -> bool:
    """Whether DIR is a system configuration directory (under /etc), as the systemd unit's is."""
    return directory.resolve().is_relative_to(SYSTEM_CONFIG_ROOT)


def database_url_for(directory: Path, state_directory: Path | None = None) -> str:
    """Where init puts the database: `state_directory` when given; the unit's state directory when DIR
    is under /etc (the only place there the unit may write); else DIR."""
    if state_directory is None:
        state_directory = SERVICE_STATE_DIRECTORY if is_service_configuration(directory) else directory
    return f"sqlite:///{(state_directory / 'escalate.db').resolve()}"


def env_file_text(db_url: str, rules_path: Path, secret: str) -> str:
    return (
        "# escalate settings. systemd reads this file with EnvironmentFile=; the CLI with --env-file.\n"
        "# Secrets belong here (mode 0600), never in rules.yaml.\n\n"
        "# The support mailbox: imap:// (plain), imap+starttls:// or imaps:// (TLS); folders after the slash, comma-separated\n"
        "ESCALATE_IMAP_URL=imap://support:CHANGE-ME@127.0.0.1:143/INBOX\n"
        "# Where escalations are sent from: smtp://, smtp+starttls:// or smtps://, user:password@ for AUTH\n"
        "ESCALATE_SMTP_URL=smtp://127.0.0.1:25\n"
        "# The database: a SQLite file (default), or postgresql://… for several instances. Only `escalate init`\n"
        "# and `escalate db migrate` create it; every other command refuses a database that is not there.\n"
        f"ESCALATE_DB_URL={db_url}\n"
        f"ESCALATE_RULES={rules_path.resolve()}\n"
        "# Signs the reply tokens in every notification. Keep it secret; changing it invalidates open tokens.\n"
        f"ESCALATE_SECRET={secret}\n"
        "# Optional: your own templates (looked up before the shipped ones)\n"
        "# ESCALATE_TEMPLATES=/etc/escalate/templates\n"
        "# Optional: chat channels, one Apprise URL each, named in rules.yaml (a tier's chat: [frontline])\n"
        "# ESCALATE_CHAT_FRONTLINE=slack://TokenA/TokenB/TokenC/#support-escalations\n"
        "# How often to poll the mailbox, evaluate tickets and send, in seconds\n"
        "ESCALATE_POLL_SECONDS=60\nESCALATE_TICK_SECONDS=30\nESCALATE_SEND_SECONDS=10\n")


def init_directory(directory: Path, example_rules: Path, *, force: bool = False, db_url: str | None = None,
                   state_directory: Path | None = None) -> Written:
    """Write DIR/rules.yaml and DIR/escalate.env and create the database (`db_url`, else `database_url_for`)."""
    created = not directory.exists()
    private.make_directory(directory)  # 0700 when init creates it: the database and secrets go in it …
    if created and state_directory is None and is_service_configuration(directory):
        os.chmod(directory, CONFIG_DIRECTORY_MODE)  # … but a service's holds no database, and its user reads rules.yaml
    rules_path, env_path = directory / "rules.yaml", directory / "escalate.env"
    for path in (rules_path, env_path):
        if path.exists() and not force:
            raise InitError(f"{path} exists; use --force to overwrite it")
    shutil.copyfile(example_rules, rules_path)
    rules_path.chmod(0o644)  # configuration, no secret: readable by the daemon's user, writable by no one else
    db_url = db_url or database_url_for(directory, state_directory)
    os.close(private.open_file(env_path, os.O_WRONLY | os.O_CREAT))  # 0600 before the secret is written
    env_path.write_text(env_file_text(db_url, rules_path, secrets.token_hex(32)), encoding="utf-8")
    env_path.chmod(0o600)
    db.connect(db_url, create=True)
    db.close()
    return Written(rules_path, env_path, db_url)
