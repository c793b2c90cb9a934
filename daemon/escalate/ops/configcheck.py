"""`escalate config check`: the whole configuration checked before a deploy or in CI, the way
`postfix check` or `amtool check-config` do — each setting's syntax, the secret's strength, the IMAP
login and folders, the SMTP server's EHLO and AUTH, the database's schema, the rules and the
template overrides. One function per check, each returning `Check`s; a failing check never stops
the others.

It sends no mail and changes nothing: the SMTP session ends after EHLO and AUTH, IMAP only logs in
and lists folders, and the database is opened read-only (nor is a missing one created).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import peewee

from escalate.config import (
    ConfigError,
    ServerUrl,
    default_db_url,
    imap_accounts,
    merged_environment,
    redact_url,
    settings_from,
    smtp_url,
    weak_secret,
)
from escalate.ingest.mailbox import Mailbox, MailboxUnavailable
from escalate.outbound.outbox import SmtpUnavailable, probe
from escalate.outbound.templates import Renderer, check_templates
from escalate.rules.loader import check_rules
from escalate.store import db, migrations

CONNECT_TIMEOUT = 15.0  # per server: a check in CI must end even when a server only half answers


@dataclass(frozen=True)
class Check:
    check: str   # what was checked: "imap login", "database", …
    ok: bool
    detail: str  # one line: what was found, or what is wrong and what to do

    def as_dict(self) -> dict:
        return asdict(self)


def read_environment(env_file: Path | None) -> dict[str, str]:
    """The environment over the env file, as every command reads it; ConfigError when the file is
    missing or malformed (then nothing else can be checked: exit 2)."""
    return merged_environment(env_file=env_file)


def run_checks(env: dict[str, str]) -> list[Check]:
    """Every check, in the order a person fixes things: settings, then servers, then files."""
    results: list[Check] = []
    for check in CHECKS:
        results.extend(check(env))
    return _redacted(results, env)


def check_settings(env: dict[str, str]) -> list[Check]:
    """Every setting but the server URLs and the secret (checked on their own below) parses:
    intervals, limits, durations, the processed-mail action, the metrics address."""
    others = {k: v for k, v in env.items() if k not in ("ESCALATE_IMAP_URL", "ESCALATE_SMTP_URL")}
    try:
        settings_from(others)
    except ConfigError as error:
        return [Check("settings", False, str(error))]
    return [Check("settings", True, "intervals, limits and the other settings parse")]


def check_secret(env: dict[str, str]) -> list[Check]:
    secret = env.get("ESCALATE_SECRET")
    if not secret:
        return [Check("secret", False, "ESCALATE_SECRET is not set: it signs the reply tokens in every notification "
                                       "(`openssl rand -hex 32`)")]
    for name in ("ESCALATE_SECRET", "ESCALATE_SECRET_PREVIOUS"):
        problem = env.get(name) and weak_secret(name, env[name].encode())
        if problem:
            return [Check("secret", False, problem)]
    return [Check("secret", True, "ESCALATE_SECRET is long enough to sign reply tokens")]


def check_imap(env: dict[str, str]) -> list[Check]:
    """Each account logs in, and has every folder it is to poll."""
    try:
        accounts = imap_accounts(env)
    except ConfigError as error:
        return [Check("imap url", False, str(error))]
    if not accounts:
        return [Check("imap url", False, "ESCALATE_IMAP_URL is not set: escalate needs the support mailbox "
                                         "(imap://user:pass@host/INBOX)")]
    return [check for account in accounts for check in _imap_account(account)]


def _imap_account(url: ServerUrl) -> list[Check]:
    mailbox = Mailbox(url, read_timeout=CONNECT_TIMEOUT)
    try:
        mailbox.connect()
    except MailboxUnavailable as error:
        return [Check("imap login", False, f"{error}: is the server up, and the user and password in "
                                           "ESCALATE_IMAP_URL right?")]
    try:
        present = mailbox.folder_names()
    except MailboxUnavailable as error:
        return [Check("imap login", True, f"{url.redacted()}: logged in"), Check("imap folders", False, str(error))]
    finally:
        mailbox.close()
    missing = [folder for folder in url.folders if folder not in present]
    login = Check("imap login", True, f"{url.redacted()}: logged in")
    if missing:
        return [login, Check("imap folders", False,
                             f"{url.redacted()}: no folder {', '.join(missing)} on the server (it has "
                             f"{', '.join(sorted(present)) or 'none'}); correct the folders after the slash in ESCALATE_IMAP_URL")]
    return [login, Check("imap folders", True, f"{url.redacted()}: {', '.join(url.folders)} exist")]


def check_smtp(env: dict[str, str]) -> list[Check]:
    """The server answers EHLO and, when the URL carries a user, accepts the login; nothing is sent."""
    try:
        url = smtp_url(env)
    except ConfigError as error:
        return [Check("smtp", False, str(error))]
    if url is None:
        return [Check("smtp", False, "ESCALATE_SMTP_URL is not set: escalate needs an SMTP server to send escalations")]
    try:
        return [Check("smtp", True, probe(url, timeout=CONNECT_TIMEOUT))]
    except SmtpUnavailable as error:
        return [Check("smtp", False, str(error))]


def check_database(env: dict[str, str]) -> list[Check]:
    """The database exists, can be reached and its schema is up to date; opened read-only."""
    url = env.get("ESCALATE_DB_URL") or default_db_url()
    try:
        database = db.open_read_only(url)
    except db.DatabaseUrlError as error:
        return [Check("database", False, str(error))]
    except peewee.DatabaseError as error:
        return [Check("database", False, f"cannot open {redact_url(url)}: {' '.join(str(error).split())}")]
    try:
        if not db.has_schema(database):
            return [Check("database", False, str(db.DatabaseMissing(url, "it holds no escalate tables")))]
        pending = migrations.pending(database)
        if pending:
            return [Check("database", False, f"{redact_url(url)}: schema at migration "
                                             f"{migrations.current_version(database)}, {len(pending)} pending "
                                             f"(up to {pending[-1].version}): run `escalate db migrate`")]
        return [Check("database", True, f"{redact_url(url)}: schema at migration {migrations.current_version(database)}")]
    except peewee.DatabaseError as error:
        return [Check("database", False, f"{redact_url(url)}: {' '.join(str(error).split())}")]
    finally:
        database.close()


def check_rules_file(env: dict[str, str]) -> list[Check]:
    """rules.yaml loads and cross-checks; each problem names file:line:column."""
    path = Path(env.get("ESCALATE_RULES") or "rules.yaml")
    issues = [str(issue) for issue in check_rules(path, template_names=_renderer(env).names())]
    if issues:
        return [Check("rules", False, f"{len(issues)} error{'s' if len(issues) != 1 else ''}: " + "; ".join(issues))]
    return [Check("rules", True, f"{path}: ok")]


def check_template_overrides(env: dict[str, str]) -> list[Check]:
    """Every kind of mail renders with the overrides in ESCALATE_TEMPLATES (or the shipped templates)."""
    directory = env.get("ESCALATE_TEMPLATES")
    if directory and not Path(directory).is_dir():
        return [Check("templates", False, f"ESCALATE_TEMPLATES: {directory} is not a directory")]
    problems = check_templates(_renderer(env))
    if problems:
        return [Check("templates", False, "; ".join(problems))]
    return [Check("templates", True, f"every kind of mail renders ({'overrides in ' + directory if directory else 'shipped templates'})")]


def _renderer(env: dict[str, str]) -> Renderer:
    directory = env.get("ESCALATE_TEMPLATES")
    return Renderer(Path(directory) if directory else None)


CHECKS: list[Callable[[dict[str, str]], list[Check]]] = [
    check_settings, check_secret, check_imap, check_smtp, check_database, check_rules_file, check_template_overrides,
]


def _redacted(results: list[Check], env: dict[str, str]) -> list[Check]:
    """No detail shows a secret, whichever library put it in an error message."""
    secrets = {env.get("ESCALATE_SECRET"), env.get("ESCALATE_SECRET_PREVIOUS"), urlsplit(env.get("ESCALATE_DB_URL", "")).password}
    for name in ("ESCALATE_IMAP_URL", "ESCALATE_SMTP_URL"):
        secrets.update(urlsplit(text).password for text in (env.get(name) or "").split())
    secrets = {s for s in secrets if s and len(s) >= 3}
    cleaned = []
    for result in results:
        detail = result.detail
        for secret in secrets:
            detail = detail.replace(secret, "***")
        cleaned.append(Check(result.check, result.ok, detail))
    return cleaned


def exit_status(results: list[Check]) -> int:
    """0 when every check passed, 1 when one failed (2, a configuration that cannot be read, is the caller's)."""
    return 0 if all(result.ok for result in results) else 1
