"""Fixtures around real servers (aiosmtpd's conftest style): Dovecot IMAP and an aiosmtpd sink
on loopback, a rules file, and the CLI with its environment pointing at them."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import tempfile
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner, Result
from escalate import clock
from escalate.cli import main
from escalate.clock import parse_time
from escalate.store import db
from escalate.testing.loopback import Dovecot, Postgres, SmtpSink

REPO = Path(__file__).resolve().parents[1]

TEST_RULES = """\
version: 1
timezone: UTC
support_address: support@example.com
reference_prefix: T
severities:
  urgent:
    keywords: [outage, down]
    first_response: 15m
    resolution: 4h
  normal:
    default: true
    first_response: 4h
    resolution: 2d
# the test rules lift the tier groups' hourly ceiling on ladder mail: tests of sending and rendering
# queue hundreds of escalations at once (tests/e2e/test_group_ceiling.py sets one)
ladder:
  group_mails_per_hour: 0
tiers:
  - level: 1
    name: Frontline
    group: tier1@example.com
    roster: [alice@example.com, bob@example.com]
    lead: lead1@example.com
  - level: 2
    name: Specialists
    group: tier2@example.com
    roster: [carol@example.com]
    lead: lead2@example.com
rules:
  - name: urgent-no-first-response
    description: Urgent tickets need a first response within 15 minutes.
    when:
      severity: urgent
      no_first_response_for: 15m
    then:
      escalate_to: 1
      repeat_every: 10m
      next_tier_after: 2
  - name: unresolved-past-target
    description: Tickets past their resolution target go to the specialists.
    when:
      past_target: resolution
    then:
      escalate_to: 2
      repeat_every: 1h
"""


@pytest.fixture(autouse=True, scope="session")
def _no_terminal_size_from_outside():
    """Tables are as wide as COLUMNS says; pytest-xdist's workers find COLUMNS=80 LINES=24 set, the shell may set
    anything. The tests read tables as a script would (no COLUMNS: 140 columns); a test about COLUMNS sets it."""
    for name in ("COLUMNS", "LINES"):
        os.environ.pop(name, None)


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """The clock override, the display zone, the database binding and the root logger (an in-process
    `escalate run` sets it up as the daemon's) are process-wide: reset them per test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    clock.set_now(None)
    clock.set_display_zone(None)
    db.close()
    for handler in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="session")
def _dovecot_server(tmp_path_factory: pytest.TempPathFactory):
    """One Dovecot for the whole session: a start and a graceful stop cost about 1.2 s, so one
    server per test was minutes of the suite."""
    with Dovecot(tmp_path_factory.mktemp("dovecot")) as server:
        yield server


def as_new(server: Dovecot) -> Dovecot:
    """A shared Dovecot as a test would find a server of its own: running, its mailboxes empty (an
    INBOX alone per user, UIDs from 1). A test may kill, stop or restart it."""
    if not server.running:  # the test before stopped it
        server.start()
    server.empty_mailboxes()
    return server


@pytest.fixture
def dovecot(_dovecot_server: Dovecot) -> Dovecot:
    """The session's Dovecot, as a test would find a server of its own (as_new)."""
    return as_new(_dovecot_server)


@pytest.fixture
def smtp_sink(request):
    """The aiosmtpd sink; `@pytest.mark.parametrize("smtp_sink", [{"smtputf8": False}], indirect=True)`
    passes options to SmtpSink."""
    with SmtpSink(**getattr(request, "param", {})) as sink:
        yield sink


@pytest.fixture
def rules_file(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str = TEST_RULES, name: str = "rules.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


# Under pytest-xdist several test processes share Debian's one PostgreSQL cluster. A test marked `serial`
# stops or crashes it: it waits until no other test uses the cluster, and the others wait while it runs.
_SHARED_CLUSTER_LOCK = Path(tempfile.gettempdir()) / "escalate-tests-postgresql.lock"


@contextlib.contextmanager
def _cluster_turn(exclusive: bool):
    with open(_SHARED_CLUSTER_LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield  # the lock goes with the file's closing


@pytest.fixture(scope="session")
def _postgres_cluster():
    """Debian's PostgreSQL cluster, started with pg_ctlcluster when down; test databases dropped at the end."""
    server = Postgres()
    with _cluster_turn(exclusive=False):  # not while another process's test has it stopped
        server.start()
    yield server
    server.drop_databases()


@pytest.fixture
def postgres(request, _postgres_cluster: Postgres):
    """The cluster; each database a test creates is its own, emptied afterwards for the tests after it."""
    with _cluster_turn(exclusive=request.node.get_closest_marker("serial") is not None):
        yield _postgres_cluster
        _postgres_cluster.recycle()


@pytest.fixture
def database_url(request, tmp_path: Path) -> str:
    """SQLite in tmp by default; `@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)`
    runs a test on a fresh PostgreSQL database instead."""
    if getattr(request, "param", "sqlite") == "postgresql":
        return request.getfixturevalue("postgres").create_database()
    return f"sqlite:///{tmp_path / 'escalate.db'}"


@pytest.fixture
def env(tmp_path: Path, dovecot: Dovecot, smtp_sink: SmtpSink, rules_file, database_url: str) -> dict[str, str]:
    # the database exists, as after `escalate init`: no other command creates one
    db.connect(database_url)
    db.close()
    return {
        "ESCALATE_IMAP_URL": dovecot.url(),
        "ESCALATE_SMTP_URL": smtp_sink.url,
        "ESCALATE_DB_URL": database_url,
        "ESCALATE_RULES": str(rules_file()),
        "ESCALATE_SECRET": secrets.token_hex(32),
    }


@pytest.fixture
def cli(env: dict[str, str]) -> Callable[..., Result]:
    """Run `escalate ARGS…` in-process with the test environment; asserts the exit status."""
    def run(*args: str, expect: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        clock.set_now(None)
        clock.set_display_zone(None)  # each command finds its zone itself, as a new process would
        assert result.exit_code == expect, f"escalate {' '.join(args)} exited {result.exit_code}:\n{result.output}"
        return result
    return run


def make_mail(*, sender: str, subject: str, body: str, to: str = "support@example.com",
              message_id: str | None = None, in_reply_to: str | None = None,
              references: list[str] | None = None, date: str | None = None,
              headers: dict[str, str] | None = None) -> bytes:
    """A customer's or tier member's mail as raw bytes, the way a mail client would write it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{message_id or secrets.token_hex(8) + '@client.example'}>"
    msg["Date"] = format_datetime(parse_time(date)) if date else "Mon, 02 Nov 2026 09:00:00 +0000"
    if in_reply_to:
        msg["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        msg["References"] = " ".join(f"<{r}>" for r in references)
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def mail() -> Callable[..., bytes]:
    return make_mail
