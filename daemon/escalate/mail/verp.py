"""VERP return paths: the envelope sender of every delivery names the notification and recipient.

A bounce is addressed to the envelope sender, so `support+bounce-{outbox}.{index}.{mac}@domain`
tells the bounce handler which outbox row and which of its recipients failed, without trusting
anything in the bounce's body (DSN formats vary by MTA). The MAC (HMAC-SHA256 under
ESCALATE_SECRET) makes a forged "bounce" for someone else's notification fail to resolve.
"""

from __future__ import annotations

import hmac
import re

from escalate.mail import tokens

_VERP = re.compile(r"^(?P<local>[^@+]+)\+bounce-(?P<outbox>\d{1,12})\.(?P<index>\d{1,4})\.(?P<mac>[a-z2-7]{16})@(?P<domain>[^@\s]+)$",
                   re.IGNORECASE)


def _mac(secret: bytes, outbox_id: int, index: int, recipient: str) -> str:
    return tokens.mac_text(secret, f"bounce|{outbox_id}|{index}|{recipient.lower()}".encode(), 16)


def return_path(sender: str, outbox_id: int, index: int, recipient: str, secret: bytes) -> str:
    """The envelope sender for recipient number `index` of outbox row `outbox_id`."""
    local, _, domain = sender.rpartition("@")
    local = local.split("+", 1)[0]  # a sender with its own subaddress keeps only the mailbox part
    return f"{local}+bounce-{outbox_id}.{index}.{_mac(secret, outbox_id, index, recipient)}@{domain}"


def parse(address: str) -> tuple[int, int] | None:
    """(outbox id, recipient index) if `address` has the VERP form, unverified; else None."""
    match = _VERP.match((address or "").strip().strip("<>"))
    if not match:
        return None
    return int(match.group("outbox")), int(match.group("index"))


def verify(address: str, recipient: str, secret: bytes) -> bool:
    """Whether `address` is the return path we minted for `recipient` (constant-time compare)."""
    match = _VERP.match((address or "").strip().strip("<>"))
    if not match:
        return False
    expected = _mac(secret, int(match.group("outbox")), int(match.group("index")), recipient)
    return hmac.compare_digest(match.group("mac").lower(), expected)
