"""Reply tokens: the Message-ID of every notification carries an HMAC over (nonce, ticket, tier).

A reply proves it answers a notification we really sent by quoting that Message-ID in
In-Reply-To/References; the token cannot be guessed without ESCALATE_SECRET (RELIABILITY.md §0.6).
Form: `<esc.{nonce}.{mac}@{domain}>`, mac = base32(HMAC-SHA256(secret, nonce|ticket|tier))[:26].
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

_TOKEN = re.compile(r"^esc\.([a-z0-9]{16})\.([a-z2-7]{26})@", re.IGNORECASE)


def _mac(secret: bytes, nonce: str, ticket_ref: str, tier: int) -> str:
    digest = hmac.new(secret, f"{nonce}|{ticket_ref}|{tier}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().rstrip("=").lower()[:26]


def new_message_id(secret: bytes, ticket_ref: str, tier: int, domain: str) -> str:
    """A fresh, unguessable Message-ID (bare, without angle brackets) bound to ticket and tier."""
    nonce = secrets.token_hex(8)
    return f"esc.{nonce}.{_mac(secret, nonce, ticket_ref, tier)}@{domain}"


def verify(secret: bytes, message_id: str, ticket_ref: str, tier: int) -> bool:
    """True when `message_id` is a token we minted for this ticket and tier (constant-time compare)."""
    match = _TOKEN.match(message_id)
    if not match:
        return False
    nonce, mac = match.group(1).lower(), match.group(2).lower()
    return hmac.compare_digest(mac, _mac(secret, nonce, ticket_ref, tier))


def looks_like_ours(message_id: str) -> bool:
    return bool(_TOKEN.match(message_id))
