"""VERP return paths and the retry schedule: pure functions, no servers."""

from datetime import timedelta

from escalate.mail import verp
from escalate.outbound import outbox

SECRET = b"verp-secret"


def test_a_return_path_names_its_row_and_recipient_and_verifies_only_for_them():
    address = verp.return_path("support@example.com", 42, 1, "Alice@Example.com", SECRET)
    assert address.startswith("support+bounce-42.1.") and address.endswith("@example.com")
    assert verp.parse(address) == (42, 1)
    assert verp.parse(f"<{address}>") == (42, 1)  # as it appears in a DSN or Return-Path
    assert verp.verify(address, "alice@example.com", SECRET)
    assert not verp.verify(address, "bob@example.com", SECRET)
    assert not verp.verify(address, "alice@example.com", b"other secret")
    assert not verp.verify(address.replace("42.1", "43.1"), "alice@example.com", SECRET)


def test_a_sender_with_its_own_subaddress_keeps_only_the_mailbox():
    address = verp.return_path("support+eu@example.com", 7, 0, "x@example.org", SECRET)
    assert address.startswith("support+bounce-7.0.")


def test_addresses_that_are_not_ours_do_not_parse():
    for address in ("support@example.com", "support+bounce-x.0.abc@example.com", "", "bounce-1.0.aaaaaaaaaaaaaaaa",
                    "support+esc.0123456789abcdef.abcdefghijklmnopqrstuvwxyz@example.com"):
        assert verp.parse(address) is None
        assert not verp.verify(address, "x@example.org", SECRET)


def test_back_off_doubles_from_thirty_seconds_and_stops_at_ten_minutes():
    assert [outbox.backoff(n) for n in range(1, 8)] == [
        timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2), timedelta(minutes=4),
        timedelta(minutes=8), timedelta(minutes=10), timedelta(minutes=10)]
