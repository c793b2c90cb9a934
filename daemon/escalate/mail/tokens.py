"""Reply tokens: the Message-ID of every notification carries an HMAC over (nonce, ticket, tier).

A reply proves it answers a notification we really sent by quoting that Message-ID in
In-Reply-To/References (or by writing to its plus-address); the token cannot be guessed without
ESCALATE_SECRET (a reply acts only with two proofs: a roster sender and a valid token).
Form: `<esc.{nonce}.{mac}@{domain}>`,
mac = base32(HMAC-SHA256(secret, nonce|ticket|tier))[:26].

Rotation: tokens are minted with the current secret and verified against the current one and,
if set, the previous one (ESCALATE_SECRET_PREVIOUS), so replies to mail sent before a rotation
keep working for one token lifetime; expiry is checked against when the notification was queued.
"""

from __future__ import annotations

import hmac
import os
import re
from typing import Iterable

_TOKEN = re.compile(r"^esc\.([a-z0-9]{16})\.([a-z2-7]{26})@", re.IGNORECASE)
# the same token carried in a plus-address: support+esc.{nonce}.{mac}@domain
_PLUS = re.compile(r"^[^+@]+\+(esc\.[a-z0-9]{16}\.[a-z2-7]{26})@(.+)$", re.IGNORECASE)


_BASE32 = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648's alphabet, lower case
_BASE32_PAIRS = [a + b for a in _BASE32 for b in _BASE32]  # 10 bits -> two characters


def mac_text(secret: bytes, message: bytes, chars: int) -> str:
    """The first `chars` (an even number) characters of base32(HMAC-SHA256(secret, message)),
    lower case: the same text as base64.b32encode gives, encoded here from the digest's leading
    bits two characters at a time (b32encode is pure Python and pads whole 5-byte groups, and a
    tick mints two MACs per notification)."""
    digest = hmac.digest(secret, message, "sha256")  # one C call; hmac.new builds a Python HMAC object
    bits = chars * 5
    leading = int.from_bytes(digest[:(bits + 7) // 8], "big") >> (-bits % 8)
    return "".join([_BASE32_PAIRS[(leading >> shift) & 1023] for shift in range(bits - 10, -1, -10)])


def _mac(secret: bytes, nonce: str, ticket_ref: str, tier: int) -> str:
    return mac_text(secret, f"{nonce}|{ticket_ref}|{tier}".encode(), 26)


def new_message_id(secret: bytes, ticket_ref: str, tier: int, domain: str) -> str:
    """A fresh, unguessable Message-ID (bare, without angle brackets) bound to ticket and tier."""
    nonce = os.urandom(8).hex()  # what secrets.token_hex(8) returns, without its two Python layers
    return f"esc.{nonce}.{_mac(secret, nonce, ticket_ref, tier)}@{domain}"


def verify(keys: bytes | Iterable[bytes], message_id: str, ticket_ref: str, tier: int) -> bool:
    """True when `message_id` is a token minted with one of `keys` for this ticket and tier
    (constant-time compare; every key is tried, so timing does not tell which one matched)."""
    match = _TOKEN.match(message_id)
    if not match:
        return False
    nonce, mac = match.group(1).lower(), match.group(2).lower()
    candidates = [keys] if isinstance(keys, bytes) else [k for k in keys if k]
    matched = False
    for key in candidates:
        matched |= hmac.compare_digest(mac, _mac(key, nonce, ticket_ref, tier))
    return matched


def looks_like_ours(message_id: str) -> bool:
    return bool(_TOKEN.match(message_id))


def plus_address(support_address: str, message_id: str) -> str:
    """The reply address that carries the token, for clients that drop In-Reply-To."""
    local, _, domain = support_address.partition("@")
    return f"{local}+{message_id.partition('@')[0]}@{domain}"


def message_id_from_plus_address(address: str) -> str | None:
    """The notification Message-ID a plus-address names, or None."""
    match = _PLUS.match(address.strip())
    return f"{match.group(1).lower()}@{match.group(2).lower()}" if match else None
