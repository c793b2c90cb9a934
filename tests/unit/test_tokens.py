import secrets

from escalate.mail import tokens

SECRET = b"k" * 32


def test_a_minted_token_verifies_only_for_its_ticket_and_tier():
    mid = tokens.new_message_id(SECRET, "T-7", 1, "example.com")
    assert mid.endswith("@example.com") and tokens.looks_like_ours(mid)
    assert tokens.verify(SECRET, mid, "T-7", 1)
    assert not tokens.verify(SECRET, mid, "T-8", 1)
    assert not tokens.verify(SECRET, mid, "T-7", 2)
    assert not tokens.verify(b"other-secret", mid, "T-7", 1)


def test_random_tokens_are_never_accepted():
    accepted = 0
    for _ in range(10_000):
        guess = f"esc.{secrets.token_hex(8)}.{secrets.token_hex(13)[:26]}@example.com"
        accepted += tokens.verify(SECRET, guess, "T-7", 1)
    assert accepted == 0


def test_tampered_tokens_fail():
    mid = tokens.new_message_id(SECRET, "T-7", 1, "example.com")
    nonce = mid.split(".")[1]
    assert not tokens.verify(SECRET, mid.replace(nonce, "0" * 16), "T-7", 1)
    assert not tokens.verify(SECRET, "not-a-token@example.com", "T-7", 1)


def test_tokens_and_return_paths_minted_before_the_faster_encoding_still_verify():
    """Notifications already sent carry MACs made by encoding the whole digest; replies and
    bounces to them arrive after an upgrade and must still verify."""
    import base64
    import hashlib
    import hmac

    from escalate.mail import verp

    for n in range(200):
        nonce = secrets.token_hex(8)
        digest = hmac.new(SECRET, f"{nonce}|T-{n}|{n % 4}".encode(), hashlib.sha256).digest()
        old_mac = base64.b32encode(digest).decode().rstrip("=").lower()[:26]
        assert tokens.verify(SECRET, f"esc.{nonce}.{old_mac}@example.com", f"T-{n}", n % 4)
        recipient = f"tier{n}@example.com"
        digest = hmac.new(SECRET, f"bounce|{n}|{n % 3}|{recipient}".encode(), hashlib.sha256).digest()
        old_return_path = f"support+bounce-{n}.{n % 3}.{base64.b32encode(digest).decode().lower()[:16]}@example.com"
        assert verp.verify(old_return_path, recipient, SECRET)
