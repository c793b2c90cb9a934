"""Several IMAP accounts in ESCALATE_IMAP_URL (whitespace-separated): each account's folders are
ingested with a checkpoint of their own, though both are called INBOX."""

from __future__ import annotations

import json

import pytest
from escalate.store import db
from escalate.store.models import FolderState
from escalate.testing.loopback import Dovecot

from ..conftest import as_new

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(scope="module")
def _two_accounts_server(tmp_path_factory: pytest.TempPathFactory):
    """One Dovecot with two users for this module: a start and a graceful stop cost about 1.2 s."""
    with Dovecot(tmp_path_factory.mktemp("two"), users={"support": "support-pw", "sales": "sales-pw"}) as server:
        yield server


@pytest.fixture
def two_accounts(_two_accounts_server: Dovecot) -> Dovecot:
    return as_new(_two_accounts_server)


def tickets(cli) -> list[str]:
    return sorted(t["subject"] for t in json.loads(cli("tickets", "list", "--json").output))


def test_two_accounts_each_with_an_inbox_are_both_ingested_once(env, cli, two_accounts: Dovecot, mail, database_url):
    env["ESCALATE_IMAP_URL"] = f"{two_accounts.url('support')}  {two_accounts.url('sales')}"
    two_accounts.append(mail(sender="carl@customer.example", subject="Site down", body="500s."), user="support")
    two_accounts.append(mail(sender="erin@prospect.example", subject="Quote please", body="For 10 seats."), user="sales")
    cli("run", "--once")
    assert tickets(cli) == ["Quote please", "Site down"]

    two_accounts.append(mail(sender="fred@prospect.example", subject="Pricing", body="Annual?"), user="sales")
    cli("run", "--once")
    cli("run", "--once")
    assert tickets(cli) == ["Pricing", "Quote please", "Site down"]

    status = json.loads(cli("status", "--json", expect=3).output)
    port = two_accounts.port
    assert sorted((f["account"], f["folder"], f["last_uid"]) for f in status["folders"]) == [
        (f"sales@127.0.0.1:{port}", "INBOX", 2), (f"support@127.0.0.1:{port}", "INBOX", 1)]
    assert "sales-pw" not in json.dumps(status) and "support-pw" not in json.dumps(status)


def test_a_checkpoint_from_before_accounts_belongs_to_the_first_account(env, cli, two_accounts: Dovecot, mail,
                                                                          database_url):
    env["ESCALATE_IMAP_URL"] = two_accounts.url("support")
    two_accounts.append(mail(sender="carl@customer.example", subject="Site down", body="500s."), user="support")
    cli("run", "--once")
    db.connect(database_url)
    FolderState.update(account="").execute()  # as migration 4 leaves the rows of a single-account database
    db.close()

    env["ESCALATE_IMAP_URL"] = f"{two_accounts.url('support')} {two_accounts.url('sales')}"
    cli("run", "--once")
    db.connect(database_url)
    rows = sorted((f.account.split("@")[0], f.folder, f.last_uid) for f in FolderState.select())
    assert rows == [("sales", "INBOX", 0), ("support", "INBOX", 1)]  # adopted, not read again from UID 0


def test_one_account_down_does_not_stop_the_others(env, cli, two_accounts: Dovecot, mail, database_url):
    import socket
    with socket.socket() as probe:  # a port nothing listens on: the second account's server is down
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    env["ESCALATE_IMAP_URL"] = f"imap://sales:x@127.0.0.1:{dead_port}/INBOX {two_accounts.url('support')}"
    two_accounts.append(mail(sender="carl@customer.example", subject="Site down", body="500s."), user="support")
    cli("run", "--once")
    assert tickets(cli) == ["Site down"]

    env["ESCALATE_IMAP_URL"] = f"imap://sales:x@127.0.0.1:{dead_port}/INBOX"
    cli("run", "--once", expect=1)  # all accounts down: the cycle fails as it always has
