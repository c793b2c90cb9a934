"""Settings from the environment (or an env file): where the mailbox, SMTP server, database and
rules are, and the signing secret.

Secrets live only here, never in rules.yaml; `Settings.__repr__` redacts them so they cannot end up
in a log line or a traceback (secrets never reach logs, the database or crash output).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from escalate.errors import InputError


class ConfigError(InputError, ValueError):
    """A setting is missing or malformed; the message names the variable and what to do."""


@dataclass(frozen=True)
class ServerUrl:
    """A parsed `imap://`, `imaps://`, `smtp://`, `smtps://` or `smtp+starttls://` URL."""

    scheme: str
    host: str
    port: int
    username: str | None = field(default=None)
    password: str | None = field(default=None, repr=False)
    path: str = ""

    @property
    def tls(self) -> bool:
        return self.scheme in ("imaps", "smtps")

    @property
    def starttls(self) -> bool:
        return self.scheme.endswith("+starttls")

    @property
    def folders(self) -> tuple[str, ...]:
        """IMAP folders to poll: the URL path, comma-separated (default INBOX)."""
        names = [unquote(part).strip() for part in self.path.lstrip("/").split(",")]
        return tuple(name for name in names if name) or ("INBOX",)

    def redacted(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"{self.scheme}://{user}{self.host}:{self.port}{self.path}"


_DEFAULT_PORTS = {"imap": 143, "imaps": 993, "imap+starttls": 143,
                  "smtp": 25, "smtps": 465, "smtp+starttls": 587}


def parse_server_url(variable: str, text: str, schemes: tuple[str, ...]) -> ServerUrl:
    parts = urlsplit(text)
    if parts.scheme not in schemes:
        raise ConfigError(f"{variable}: expected a URL starting with {' or '.join(s + '://' for s in schemes)}, "
                          f"got {parts.scheme + '://' if parts.scheme else repr(text[:20])}")
    if not parts.hostname:
        raise ConfigError(f"{variable}: the URL has no host")
    try:
        port = parts.port or _DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise ConfigError(f"{variable}: the port is not a number") from None
    return ServerUrl(
        scheme=parts.scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        path=parts.path,
    )


@dataclass(frozen=True)
class Settings:
    imap: ServerUrl | None
    smtp: ServerUrl | None
    db_url: str
    rules_path: Path
    secret: bytes | None = field(repr=False)
    templates_dir: Path | None = None
    poll_seconds: float = 60.0
    tick_seconds: float = 30.0
    send_seconds: float = 10.0
    metrics_address: str | None = None  # host:port for the Prometheus endpoint; None = off
    stuck_seconds: float = 300.0  # one stage run longer than this stops the systemd watchdog pings
    # SIGTERM: how long in-flight work may take to finish before the daemon leaves it (retried on
    # restart) and exits; below the unit's TimeoutStopSec (15 s), after which systemd kills it
    stop_seconds: float = 8.0
    # PostgreSQL: how long a claimed delivery stays with the instance that claimed it; when that
    # instance dies, another one sends the row after this (outbox.claim). Longer than one send.
    send_lease_seconds: float = 60.0
    previous_secret: bytes | None = field(default=None, repr=False)  # still accepted for one token lifetime
    token_ttl: timedelta = timedelta(days=7)  # a reply to an older notification cannot act
    # ingest: what to do with processed mail on the server, size limits, where attachments go
    processed_action: str = "leave"  # leave | flag (\\Seen) | move:FOLDER
    folder_seconds: tuple[tuple[str, float], ...] = ()  # per-folder poll interval, e.g. (("Sent", 300.0),)
    max_message_bytes: int = 25 * 1024 * 1024  # larger mail is quarantined "too large", headers kept
    max_attachment_bytes: int = 10 * 1024 * 1024  # larger attachments keep name/type/size, not contents
    attachments_dir: Path | None = None  # default: "attachments" beside the SQLite file (the state dir)
    imap_timeout: float = 60.0  # read timeout on every IMAP call
    idle: bool = True  # wait in IMAP IDLE between polls where the server offers it (daemon only)
    # several mailboxes: ESCALATE_IMAP_URL holds whitespace-separated URLs; `imap` is the first
    imap_accounts: tuple[ServerUrl, ...] = ()

    @property
    def mailboxes(self) -> tuple[ServerUrl, ...]:
        """Every IMAP account to ingest, the first (`imap`) first."""
        return self.imap_accounts or ((self.imap,) if self.imap else ())

    def __repr__(self) -> str:
        return (f"Settings(imap={self.imap.redacted() if self.imap else None}, "
                f"smtp={self.smtp.redacted() if self.smtp else None}, db_url={redact_url(self.db_url)}, "
                f"rules_path={str(self.rules_path)!r}, secret={'***' if self.secret else None})")

    def secret_values(self) -> list[str]:
        """Every secret in these settings, for the log redactor."""
        values = [self.secret.decode() if self.secret else None,
                  self.previous_secret.decode() if self.previous_secret else None]
        values += [url.password for url in (*self.mailboxes, self.smtp) if url is not None]
        db_password = urlsplit(self.db_url).password
        from escalate.outbound.chat import secret_parts  # chat channel URLs carry their tokens in host and path

        return [v for v in values + [db_password] + secret_parts() if v]

    def require_secret(self) -> bytes:
        """The signing key, refused when missing or too short to resist a brute-force search from a
        notification's Message-ID (the previous key too, which still verifies tokens)."""
        if not self.secret:
            raise ConfigError("ESCALATE_SECRET is not set: it signs the reply tokens in every notification. "
                              "Set it in the environment or the env file (e.g. `openssl rand -hex 32`).")
        for name, value in (("ESCALATE_SECRET", self.secret), ("ESCALATE_SECRET_PREVIOUS", self.previous_secret)):
            if value and (problem := weak_secret(name, value)):
                raise ConfigError(problem)
        return self.secret


MIN_SECRET_BYTES = 32


def weak_secret(name: str, value: bytes) -> str | None:
    """Why the key in variable `name` is too short to sign reply tokens, or None when it is long enough."""
    if key_material(value) >= MIN_SECRET_BYTES:
        return None
    return (f"{name} has {key_material(value)} bytes of key material, fewer than the {MIN_SECRET_BYTES} "
            "needed: a short key can be found from any notification's Message-ID, and with it replies "
            "forged. Set a random one (`openssl rand -hex 32`; `escalate init` writes one).")


def key_material(secret: bytes) -> int:
    """How many bytes of key the secret holds: a hex string (what `openssl rand -hex` and `escalate
    init` write) half its length, since each character carries four bits; anything else its bytes."""
    text = secret.strip()
    if len(text) % 2 == 0 and text and all(c in b"0123456789abcdefABCDEF" for c in text):
        return len(text) // 2
    return len(secret)


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def read_env_file(path: Path) -> dict[str, str]:
    """Read KEY=VALUE lines the way systemd's EnvironmentFile does (comments, optional quotes)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export "):]
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise ConfigError(f"{path}:{number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def default_db_url() -> str:
    """A SQLite file in systemd's StateDirectory when there is one, else in the working directory."""
    state = os.environ.get("STATE_DIRECTORY")
    base = Path(state.split(":")[0]) if state else Path.cwd()
    return f"sqlite:///{base / 'escalate.db'}"


def _float(env: dict[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{name}: expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {text!r}")
    return value


def merged_environment(env: dict[str, str] | None = None, env_file: Path | None = None) -> dict[str, str]:
    """`env` (default: os.environ) over the KEY=VALUE lines of `env_file` (default: ESCALATE_ENV_FILE);
    ConfigError when the file is missing or malformed."""
    merged: dict[str, str] = {}
    file_name = env_file or (os.environ.get("ESCALATE_ENV_FILE") and Path(os.environ["ESCALATE_ENV_FILE"]))
    if file_name:
        if not Path(file_name).exists():
            raise ConfigError(f"env file {file_name} does not exist (write one with `escalate init DIR`)")
        try:
            from_file = read_env_file(Path(file_name))
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"env file {file_name} cannot be read: {getattr(error, 'strerror', None) or error}") from None
        merged.update(from_file)
        # chat channels (chat.py) are read where they are used, from the environment: the file's
        # fill what the environment lacks there too, as systemd's EnvironmentFile would
        for key, value in from_file.items():
            if key.startswith("ESCALATE_CHAT_") and not os.environ.get(key):
                os.environ[key] = value
    # an empty variable is "not set" for every setting: it does not hide the file's value
    # (an `export ESCALATE_DB_URL=` left in a shell would otherwise switch to the default database)
    merged.update((key, value) for key, value in (env if env is not None else os.environ).items()
                  if value or key not in merged)
    return merged


def load_settings(env: dict[str, str] | None = None, env_file: Path | None = None) -> Settings:
    """Settings from `env` (default: os.environ), with `env_file` filling what the environment lacks."""
    return settings_from(merged_environment(env, env_file))


def imap_accounts(merged: dict[str, str]) -> tuple[ServerUrl, ...]:
    """The accounts of ESCALATE_IMAP_URL (whitespace-separated URLs), each named once."""
    accounts = tuple(parse_server_url("ESCALATE_IMAP_URL", text, ("imap", "imaps", "imap+starttls"))
                     for text in (merged.get("ESCALATE_IMAP_URL") or "").split())
    names = [(a.username, a.host, a.port) for a in accounts]
    if len(set(names)) < len(names):
        raise ConfigError("ESCALATE_IMAP_URL: an account is named twice; list several folders of one account "
                          "after its slash, comma-separated (imap://user:pass@host/INBOX,Support)")
    return accounts


def smtp_url(merged: dict[str, str]) -> ServerUrl | None:
    text = merged.get("ESCALATE_SMTP_URL")
    return parse_server_url("ESCALATE_SMTP_URL", text, ("smtp", "smtps", "smtp+starttls")) if text else None


def settings_from(merged: dict[str, str]) -> Settings:
    """Settings from the merged KEY=VALUE environment; ConfigError names the first bad one."""
    accounts = imap_accounts(merged)
    secret = merged.get("ESCALATE_SECRET")
    templates = merged.get("ESCALATE_TEMPLATES")
    return Settings(
        imap=accounts[0] if accounts else None,
        imap_accounts=accounts,
        smtp=smtp_url(merged),
        db_url=merged.get("ESCALATE_DB_URL") or default_db_url(),
        rules_path=Path(merged.get("ESCALATE_RULES") or "rules.yaml"),
        secret=secret.encode() if secret else None,
        templates_dir=Path(templates) if templates else None,
        poll_seconds=_float(merged, "ESCALATE_POLL_SECONDS", 60.0),
        tick_seconds=_float(merged, "ESCALATE_TICK_SECONDS", 30.0),
        send_seconds=_float(merged, "ESCALATE_SEND_SECONDS", 10.0),
        metrics_address=_address(merged, "ESCALATE_METRICS"),
        stuck_seconds=_float(merged, "ESCALATE_STUCK_SECONDS", 300.0),
        stop_seconds=_float(merged, "ESCALATE_STOP_SECONDS", 8.0),
        send_lease_seconds=_float(merged, "ESCALATE_SEND_LEASE_SECONDS", 60.0),
        previous_secret=(merged.get("ESCALATE_SECRET_PREVIOUS") or "").encode() or None,
        token_ttl=_duration(merged, "ESCALATE_TOKEN_TTL", timedelta(days=7)),
        processed_action=_processed_action(merged),
        folder_seconds=_folder_seconds(merged),
        max_message_bytes=int(_float(merged, "ESCALATE_MAX_MESSAGE_BYTES", 25 * 1024 * 1024)),
        max_attachment_bytes=int(_float(merged, "ESCALATE_MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)),
        attachments_dir=Path(merged["ESCALATE_ATTACHMENTS_DIR"]) if merged.get("ESCALATE_ATTACHMENTS_DIR") else None,
        imap_timeout=_float(merged, "ESCALATE_IMAP_TIMEOUT", 60.0),
        idle=(merged.get("ESCALATE_IMAP_IDLE") or "yes").strip().lower() not in ("no", "0", "false", "off"),
    )


def _processed_action(env: dict[str, str]) -> str:
    """ESCALATE_PROCESSED: leave (default), flag (set \\Seen) or move:FOLDER, done after the commit."""
    text = (env.get("ESCALATE_PROCESSED") or "leave").strip()
    if text in ("leave", "flag"):
        return text
    if text.startswith("move:") and text[5:].strip():
        return "move:" + text[5:].strip()
    raise ConfigError(f"ESCALATE_PROCESSED: expected leave, flag or move:FOLDER, got {text!r}")


def _folder_seconds(env: dict[str, str]) -> tuple[tuple[str, float], ...]:
    """ESCALATE_FOLDER_SCHEDULES="INBOX=60,Sent=300": each folder's own poll interval in seconds."""
    text = (env.get("ESCALATE_FOLDER_SCHEDULES") or "").strip()
    schedules = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        folder, sep, seconds = item.rpartition("=")
        try:
            value = float(seconds)
        except ValueError:
            value = -1.0
        if not sep or not folder.strip() or value <= 0:
            raise ConfigError(f"ESCALATE_FOLDER_SCHEDULES: expected FOLDER=SECONDS[,…] such as INBOX=60,Sent=300, got {item!r}")
        schedules.append((folder.strip(), value))
    return tuple(schedules)


def _duration(env: dict[str, str], name: str, default: timedelta) -> timedelta:
    from escalate.rules.durations import parse_duration  # the same duration syntax as rules.yaml

    text = (env.get(name) or "").strip()
    if not text:
        return default
    try:
        value = parse_duration(text)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None
    if value <= timedelta(0):
        raise ConfigError(f"{name}: must be positive, got {text!r}")
    return value


def _address(env: dict[str, str], name: str) -> str | None:
    text = (env.get(name) or "").strip()
    if not text:
        return None
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{name}: expected host:port such as 127.0.0.1:9464, got {text!r}")
    return text
